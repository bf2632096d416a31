#include "adapters/files/glob_match.hpp"

#include <cstddef>

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

// Reads one (possibly escaped) character of a bracket expression at pattern[i]; advances i.
unsigned char class_char(std::string_view pattern, std::size_t& i) {
  if (pattern[i] == '\\' && i + 1 < pattern.size()) {
    i += 2;
    return static_cast<unsigned char>(pattern[i - 1]);
  }
  ++i;
  return static_cast<unsigned char>(pattern[i - 1]);
}

// Matches the one-character token at pattern[p] (anything but '*') against `c`. Returns the
// token's length in the pattern; `matched` says whether `c` matched it.
std::size_t match_token(std::string_view pattern, std::size_t p, unsigned char c, bool& matched) {
  const char token = pattern[p];
  if (token == '?') {
    matched = true;
    return 1;
  }
  if (token == '\\' && p + 1 < pattern.size()) {
    matched = static_cast<unsigned char>(pattern[p + 1]) == c;
    return 2;
  }
  if (token == '[') {
    std::size_t i = p + 1;
    const bool negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
    if (negate)
      ++i;
    bool first = true;
    bool in_set = false;
    while (i < pattern.size()) {
      if (pattern[i] == ']' && !first) {
        matched = in_set != negate;
        return i - p + 1;
      }
      first = false;
      const unsigned char low = class_char(pattern, i);
      unsigned char high = low;
      if (i + 1 < pattern.size() && pattern[i] == '-' && pattern[i + 1] != ']') {
        ++i;
        high = class_char(pattern, i);
      }
      if (low <= c && c <= high)
        in_set = true;
    }
    // No closing bracket: the '[' is an ordinary character.
  }
  matched = static_cast<unsigned char>(token) == c;
  return 1;
}

}  // namespace

bool match_component(std::string_view pattern, std::string_view name) {
  // Greedy with backtracking to the last '*': O(pattern x name) at worst, and correct because
  // a later '*' can always absorb what an earlier one would have.
  std::size_t p = 0;
  std::size_t n = 0;
  std::size_t star_p = std::string_view::npos;
  std::size_t star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size()) {
      if (pattern[p] == '*') {
        star_p = ++p;
        star_n = n;
        continue;
      }
      bool matched = false;
      const std::size_t length =
          match_token(pattern, p, static_cast<unsigned char>(name[n]), matched);
      if (matched && name[n] != '/') {
        p += length;
        ++n;
        continue;
      }
    }
    if (star_p == std::string_view::npos || name[star_n] == '/')
      return false;
    p = star_p;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

GlobPattern::GlobPattern(std::string_view pattern) {
  for_each_component(pattern, [this](std::string_view component) {
    m_segments.push_back(Segment{component == "**", std::string(component)});
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
    } else if (match_component(segment.pattern, name)) {
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
