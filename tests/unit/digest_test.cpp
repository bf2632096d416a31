#include "daemon/digest.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace retentiond;

TEST_CASE("sha256_hex") {
  SUBCASE("abc (FIPS 180-2)") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  }
  SUBCASE("empty input") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  }
  SUBCASE("two blocks (FIPS 180-2)") {
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  SUBCASE("embedded NUL bytes are hashed") {
    using namespace std::string_literals;
    CHECK(sha256_hex("a\0b"s) != sha256_hex("a"));
    CHECK(sha256_hex("a\0b"s).size() == 64);
  }
}

TEST_CASE("hmac_sha256_hex") {
  SUBCASE("RFC 4231 test case 1") {
    const std::string key(20, '\x0b');
    CHECK(hmac_sha256_hex(key, "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  }
  SUBCASE("RFC 4231 test case 2") {
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }
  SUBCASE("RFC 4231 test case 6: key longer than the block") {
    const std::string key(131, '\xaa');
    CHECK(hmac_sha256_hex(key, "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
  SUBCASE("empty key and data") {
    CHECK(hmac_sha256_hex("", "") ==
          "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  }
  SUBCASE("the key matters") {
    CHECK(hmac_sha256_hex("k1", "data") != hmac_sha256_hex("k2", "data"));
  }
}
