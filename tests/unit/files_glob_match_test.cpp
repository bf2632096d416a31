#include "adapters/files/glob_match.hpp"

#include <doctest/doctest.h>

#include <string>

using retentiond::adapters::files::glob_match;
using retentiond::adapters::files::GlobPattern;
using retentiond::adapters::files::match_component;

TEST_CASE("a component pattern matches one name") {
  SUBCASE("literal") {
    CHECK(match_component("a.jpg", "a.jpg"));
    CHECK_FALSE(match_component("a.jpg", "a.jpeg"));
    CHECK_FALSE(match_component("a.jpg", "a.jp"));
  }
  SUBCASE("star") {
    CHECK(match_component("*", "anything"));
    CHECK(match_component("*", ""));
    CHECK(match_component("*.jpg", ".hidden.jpg"));
    CHECK(match_component("a*b*c", "aXXbYYc"));
    CHECK(match_component("a*b*c", "abbbc"));
    CHECK_FALSE(match_component("a*b*c", "aXXbYY"));
    CHECK(match_component("**", "x"));
  }
  SUBCASE("question mark") {
    CHECK(match_component("?.log", "a.log"));
    CHECK_FALSE(match_component("?.log", "ab.log"));
    CHECK_FALSE(match_component("?", ""));
  }
  SUBCASE("bracket expressions") {
    CHECK(match_component("[abc].txt", "b.txt"));
    CHECK_FALSE(match_component("[abc].txt", "d.txt"));
    CHECK(match_component("[a-c]x", "cx"));
    CHECK_FALSE(match_component("[a-c]x", "dx"));
    CHECK(match_component("[!a-c]x", "dx"));
    CHECK(match_component("[^a-c]x", "dx"));
    CHECK_FALSE(match_component("[!a-c]x", "ax"));
    CHECK(match_component("[]]", "]"));
    CHECK(match_component("[a-]", "-"));
  }
  SUBCASE("an unterminated bracket is literal") {
    CHECK(match_component("[ab", "[ab"));
    CHECK_FALSE(match_component("[ab", "a"));
  }
  SUBCASE("escapes") {
    CHECK(match_component("\\*", "*"));
    CHECK_FALSE(match_component("\\*", "x"));
    CHECK(match_component("a\\?", "a?"));
  }
  SUBCASE("nothing matches a slash") {
    CHECK_FALSE(match_component("*", "a/b"));
    CHECK_FALSE(match_component("a?b", "a/b"));
    CHECK_FALSE(match_component("a[/]b", "a/b"));
  }
  SUBCASE("characters, not bytes: `?` and sets take one UTF-8 character") {
    CHECK(match_component("?.mp4", "\u00e9.mp4"));         // é: two bytes
    CHECK_FALSE(match_component("??.mp4", "\u00e9.mp4"));  // not two characters
    CHECK(match_component("??.mp4", "\u00e9a.mp4"));
    CHECK(match_component("?", "\U0001F600"));  // four bytes
    CHECK(match_component("[\u00e9\u00e8]t\u00e9", "\u00e8t\u00e9"));
    CHECK_FALSE(match_component("[\u00e9]", "\u00fc"));
    CHECK(match_component("[!\u00e9]", "\u00fc"));  // ü is not é, though both start with 0xC3
    CHECK_FALSE(match_component("[!\u00e9]", "\u00e9"));
    CHECK(match_component("[\u00e0-\u00fc]", "\u00f6"));  // a range of code points
    CHECK_FALSE(match_component("[\u00e0-\u00fc]", "a"));
    CHECK(match_component("*\u00e9", "caf\u00e9"));
    CHECK(match_component("\\\u00e9", "\u00e9"));  // an escaped é
  }
  SUBCASE("a byte that is not UTF-8 is one character, equal only to itself") {
    const std::string latin1 = "caf\xe9";  // é in Latin-1
    CHECK(match_component("caf?", latin1));
    CHECK_FALSE(match_component("caf\u00e9", latin1));
    CHECK_FALSE(match_component("caf[\u00e9]", latin1));
    CHECK(match_component("caf[!\u00e9]", latin1));
    CHECK(match_component("caf\xe9", latin1));         // the same byte in the pattern
    CHECK(match_component("??", "\xc3\xc3"));          // a lead byte without its continuation
    CHECK(match_component("?", "\xc0\xaf") == false);  // an overlong '/' is two bytes
  }
  SUBCASE("many stars stay fast on a long name") {
    const std::string name(250, 'a');
    CHECK_FALSE(match_component("*a*a*a*a*a*a*a*a*b", name));
  }
}

TEST_CASE("a glob matches relative paths component by component") {
  SUBCASE("star stays within one component") {
    CHECK(glob_match("uploads/*.jpg", "uploads/a.jpg"));
    CHECK_FALSE(glob_match("uploads/*.jpg", "uploads/x/a.jpg"));
    CHECK_FALSE(glob_match("uploads/*", "uploads"));
  }
  SUBCASE("trailing globstar: everything beneath, not the directory itself") {
    CHECK(glob_match("uploads/tmp/**", "uploads/tmp/a"));
    CHECK(glob_match("uploads/tmp/**", "uploads/tmp/a/b/c.bin"));
    CHECK_FALSE(glob_match("uploads/tmp/**", "uploads/tmp"));
    CHECK_FALSE(glob_match("uploads/tmp/**", "uploads/tmpx/a"));
    CHECK_FALSE(glob_match("uploads/tmp/**", "uploads/a"));
  }
  SUBCASE("middle globstar: zero or more components") {
    CHECK(glob_match("a/**/b.log", "a/b.log"));
    CHECK(glob_match("a/**/b.log", "a/x/b.log"));
    CHECK(glob_match("a/**/b.log", "a/x/y/z/b.log"));
    CHECK_FALSE(glob_match("a/**/b.log", "a/x/y/c.log"));
    CHECK(glob_match("**/*.tmp", "x.tmp"));
    CHECK(glob_match("**/*.tmp", "d/e/x.tmp"));
    CHECK(glob_match("a/**/**/b", "a/b"));
  }
  SUBCASE("globstar inside a component is a star") {
    CHECK(glob_match("a/x**y", "a/xzzy"));
    CHECK_FALSE(glob_match("a/x**y", "a/x/y"));
  }
  SUBCASE("empty and dot components are ignored") {
    CHECK(glob_match("./a//b", "a/b"));
    CHECK(glob_match("a/b", "a/./b"));
    CHECK(glob_match("a/b", "a//b"));
  }
  SUBCASE("an empty pattern or path matches nothing") {
    CHECK_FALSE(glob_match("", "a"));
    CHECK_FALSE(glob_match("**", ""));
  }
}

TEST_CASE("glob states tell a walk which directories to enter") {
  const GlobPattern glob("uploads/tmp/*.bin");
  auto states = glob.start();
  CHECK(glob.alive(states));
  CHECK_FALSE(glob.alive(glob.step(states, "other")));
  states = glob.step(states, "uploads");
  CHECK(glob.alive(states));
  CHECK_FALSE(glob.accepts(states));
  states = glob.step(states, "tmp");
  CHECK(glob.alive(states));
  const auto file = glob.step(states, "a.bin");
  CHECK(glob.accepts(file));
  CHECK_FALSE(glob.alive(file));  // nothing beneath a.bin can match

  const GlobPattern everything("data/**");
  auto deep = everything.step(everything.step(everything.start(), "data"), "x");
  CHECK(everything.accepts(deep));
  CHECK(everything.alive(deep));
}

TEST_CASE("a byte that is not UTF-8 lies in no range of code points") {
  // Not even one that takes in U+DC80..U+DCFF, where such bytes are often mapped.
  CHECK_FALSE(match_component("caf[\u0100-\U0010FFFF]", "caf\xe9"));  // Latin-1 é
  CHECK_FALSE(match_component("[\u4e00-\U0010FFFF]*", "\xff-name.tmp"));
}
