#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace retentiond::adapters::files {

// A file rule's `glob`, matched against paths relative to a files datastore's root, one
// component at a time so a directory walk can skip subtrees that cannot match.
//
// Syntax, per '/'-separated component: `*` any run of characters, `?` one character,
// `[abc]`, `[a-z]`, `[!a-z]` (or `[^a-z]`) one character of (not of) a set, `\x` a literal x.
// Characters are Unicode code points of UTF-8 names: `?` is one `é`, and `[à-ü]` a range of
// code points. A byte of a name that is not valid UTF-8 is one character, equal only to itself.
// None of these ever matches '/'. A component that is exactly `**` matches any number of whole
// components: zero or more in the middle (`a/**/b` matches `a/b` and `a/x/y/b`), one or more at
// the end (`a/**` matches everything beneath `a`, not `a` itself). `**` inside a component is
// `*`. Empty and `.` components are ignored; `*` matches names starting with a dot too.
// One component's pattern, compiled once for the names a walk meets.
class ComponentPattern {
public:
  explicit ComponentPattern(std::string_view pattern);
  bool matches(std::string_view name) const;

private:
  struct Token {
    enum class Kind { star, any, literal, set };
    Kind kind = Kind::literal;
    char32_t literal = 0;
    bool negate = false;                                // of a set
    std::vector<std::pair<char32_t, char32_t>> ranges;  // of a set, inclusive
  };

  std::vector<Token> m_tokens;
};

class GlobPattern {
public:
  // Which pattern positions a partial path has reached; opaque to callers.
  using States = std::vector<bool>;

  explicit GlobPattern(std::string_view pattern);

  // Whether `relative_path` ("a/b/c.jpg"; empty and `.` components ignored) matches.
  bool matches(std::string_view relative_path) const;

  // The states before any component.
  States start() const;
  // The states after one more path component `name` (no '/').
  States step(const States& states, std::string_view name) const;
  // Whether the path consumed so far matches the whole pattern.
  bool accepts(const States& states) const;
  // Whether a longer path (one more component or several) could still match: descend if so.
  bool alive(const States& states) const;
  // How many leading components are plain names, before the first with a wildcard: 2 for
  // "uploads/tmp/**". The directories they name are the rule's place, not its matches.
  std::size_t literal_depth() const;

private:
  struct Segment {
    bool globstar = false;
    std::string pattern;  // one component's pattern when !globstar
    ComponentPattern compiled;
  };

  void close(States& states) const;

  std::vector<Segment> m_segments;
};

// Whether one path component `name` matches one component pattern (`*`, `?`, `[...]`, `\`).
bool match_component(std::string_view pattern, std::string_view name);

// Whether `relative_path` matches `pattern` (see GlobPattern).
bool glob_match(std::string_view pattern, std::string_view relative_path);

}  // namespace retentiond::adapters::files
