#include "adapters/files/glob_match.hpp"

#include <cstddef>
#include <string>

namespace retentiond::adapters::files {
namespace {

// Calls `visit` with every component of `path` that is neither empty nor ".".
template <typename Visit> void for_each_component(std::string_view path, Visit&& visit) {
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find('/', begin);
    if (end == std::string_view::npos)
      end = path.size();
    const std::string_view component = path.substr(begin, end - begin);
    if (!component.empty() && component != ".")
      visit(component);
    begin = end + 1;
  }
}

// Decodes the character at text[i] and advances past it: a UTF-8 sequence is one code point;
// a byte that does not start a valid sequence (overlong, a surrogate, cut short) is one
// character of its own, 0x110000 plus the byte: past the last code point, so that no range of
// code points a pattern can write (U+0100-U+10FFFF takes in U+DC80-U+DCFF) ever holds it.
constexpr char32_t k_not_utf8 = 0x110000;

char32_t next_character(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(text[at]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  std::size_t length = 0;
  char32_t value = 0;
  char32_t smallest = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    value = lead & 0x1F;
    smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    value = lead & 0x0F;
    smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    value = lead & 0x07;
    smallest = 0x10000;
  }
  bool valid = length > 0 && i + length <= text.size();
  for (std::size_t k = 1; valid && k < length; ++k) {
    valid = (byte(i + k) & 0xC0) == 0x80;
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  valid = valid && value >= smallest && value <= 0x10FFFF && !(value >= 0xD800 && value <= 0xDFFF);
  if (!valid) {
    ++i;
    return k_not_utf8 + lead;
  }
  i += length;
  return value;
}

// Reads one (possibly escaped) character of a bracket expression at pattern[i]; advances i.
char32_t class_character(std::string_view pattern, std::size_t& i) {
  if (pattern[i] == '\\' && i + 1 < pattern.size())
    ++i;
  return next_character(pattern, i);
}

}  // namespace

ComponentPattern::ComponentPattern(std::string_view pattern) {
  std::size_t p = 0;
  while (p < pattern.size()) {
    Token token;
    if (pattern[p] == '*') {
      token.kind = Token::Kind::star;
      ++p;
    } else if (pattern[p] == '?') {
      token.kind = Token::Kind::any;
      ++p;
    } else if (pattern[p] == '\\' && p + 1 < pattern.size()) {
      ++p;
      token.literal = next_character(pattern, p);
    } else if (pattern[p] == '[') {
      std::size_t i = p + 1;
      token.negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
      if (token.negate)
        ++i;
      bool first = true;
      bool closed = false;
      while (i < pattern.size()) {
        if (pattern[i] == ']' && !first) {
          closed = true;
          ++i;
          break;
        }
        first = false;
        const char32_t low = class_character(pattern, i);
        char32_t high = low;
        if (i + 1 < pattern.size() && pattern[i] == '-' && pattern[i + 1] != ']') {
          ++i;
          high = class_character(pattern, i);
        }
        token.ranges.emplace_back(low, high);
      }
      if (closed) {
        token.kind = Token::Kind::set;
        p = i;
      } else {
        // No closing bracket: the '[' is an ordinary character.
        token = Token{};
        token.literal = '[';
        ++p;
      }
    } else {
      token.literal = next_character(pattern, p);
    }
    m_tokens.push_back(std::move(token));
  }
}

bool ComponentPattern::matches(std::string_view name) const {
  const auto matches_one = [](const Token& token, char32_t c) {
    if (c == U'/')
      return false;  // never part of a name: nothing matches it
    switch (token.kind) {
    case Token::Kind::any: return true;
    case Token::Kind::literal: return token.literal == c;
    case Token::Kind::set: {
      bool in_set = false;
      for (const auto& [low, high] : token.ranges)
        in_set = in_set || (low <= c && c <= high);
      return in_set != token.negate;
    }
    case Token::Kind::star: return false;
    }
    return false;
  };
  // Greedy with backtracking to the last '*': O(pattern x name) at worst, and correct because
  // a later '*' can always absorb what an earlier one would have. `n` and `star_n` are byte
  // offsets into the name, at the start of a character.
  std::size_t p = 0;
  std::size_t n = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_n = 0;
  while (n < name.size()) {
    if (p < m_tokens.size()) {
      if (m_tokens[p].kind == Token::Kind::star) {
        star_p = ++p;
        star_n = n;
        continue;
      }
      std::size_t next = n;
      if (matches_one(m_tokens[p], next_character(name, next))) {
        ++p;
        n = next;
        continue;
      }
    }
    if (star_p == std::string_view::npos || name[star_n] == '/')
      return false;
    p = star_p;
    next_character(name, star_n);  // the star takes one more character
    n = star_n;
  }
  while (p < m_tokens.size() && m_tokens[p].kind == Token::Kind::star)
    ++p;
  return p == m_tokens.size();
}

bool match_component(std::string_view pattern, std::string_view name) {
  return ComponentPattern(pattern).matches(name);
}

GlobPattern::GlobPattern(std::string_view pattern) {
  for_each_component(pattern, [this](std::string_view component) {
    m_segments.push_back(
        Segment{component == "**", std::string(component), ComponentPattern(component)});
  });
}

std::size_t GlobPattern::literal_depth() const {
  std::size_t depth = 0;
  while (depth < m_segments.size() && !m_segments[depth].globstar &&
         m_segments[depth].pattern.find_first_of("*?[\\") == std::string::npos)
    ++depth;
  return depth;
}

void GlobPattern::close(States& states) const {
  // A `**` in the middle may match zero components; a trailing one needs at least one.
  for (std::size_t i = 0; i + 1 < m_segments.size(); ++i)
    if (states[i] && m_segments[i].globstar)
      states[i + 1] = true;
}

GlobPattern::States GlobPattern::start() const {
  States states(m_segments.size() + 1, false);
  states[0] = true;
  close(states);
  return states;
}

GlobPattern::States GlobPattern::step(const States& states, std::string_view name) const {
  States next(m_segments.size() + 1, false);
  const std::size_t last = m_segments.size();
  for (std::size_t i = 0; i < last; ++i) {
    if (!states[i])
      continue;
    const Segment& segment = m_segments[i];
    if (segment.globstar) {
      next[i] = true;
      if (i + 1 == last)
        next[last] = true;
    } else if (segment.compiled.matches(name)) {
      next[i + 1] = true;
    }
  }
  close(next);
  return next;
}

bool GlobPattern::accepts(const States& states) const {
  return states.back();
}

bool GlobPattern::alive(const States& states) const {
  for (std::size_t i = 0; i + 1 < states.size(); ++i)
    if (states[i])
      return true;
  return false;
}

bool GlobPattern::matches(std::string_view relative_path) const {
  States states = start();
  bool any = false;
  for_each_component(relative_path, [&](std::string_view component) {
    states = step(states, component);
    any = true;
  });
  return any && accepts(states);
}

bool glob_match(std::string_view pattern, std::string_view relative_path) {
  return GlobPattern(pattern).matches(relative_path);
}

}  // namespace retentiond::adapters::files
