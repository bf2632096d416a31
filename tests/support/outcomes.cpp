#include "tests/support/outcomes.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

namespace retentiond::test {

const RuleOutcome& outcome_of(const RunSummary& summary, const std::string& rule) {
  for (const RuleOutcome& outcome : summary.outcomes)
    if (outcome.rule == rule)
      return outcome;
  FAIL("no outcome for rule " << rule);
  throw std::logic_error("unreachable");
}

}  // namespace retentiond::test
