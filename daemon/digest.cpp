#include "daemon/digest.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <limits>
#include <stdexcept>
#include <vector>

namespace retentiond {

namespace {

constexpr std::size_t k_sha256_size = 32;

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  constexpr std::string_view k_digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    hex += k_digits[bytes[i] >> 4];
    hex += k_digits[bytes[i] & 0x0f];
  }
  return hex;
}

// OpenSSL reads a null pointer with length 0 as "no input" in some paths; a real address is safer.
const unsigned char* bytes_of(std::string_view text) {
  static constexpr unsigned char k_empty = 0;
  return text.empty() ? &k_empty : reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(bytes_of(data), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != k_sha256_size)
    throw std::runtime_error("SHA-256 failed in OpenSSL");
  return to_hex(digest.data(), size);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::runtime_error("HMAC key is too long");
  if (HMAC(EVP_sha256(), bytes_of(key), static_cast<int>(key.size()), bytes_of(data), data.size(),
           mac.data(), &size) == nullptr ||
      size != k_sha256_size)
    throw std::runtime_error("HMAC-SHA-256 failed in OpenSSL");
  return to_hex(mac.data(), size);
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return to_hex(random.data(), bytes);
}

}  // namespace retentiond
