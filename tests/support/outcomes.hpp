#pragma once

#include "daemon/engine.hpp"

#include <string>

namespace retentiond::test {

// The outcome of `rule` in an engine run; fails the test when the run has none.
const RuleOutcome& outcome_of(const RunSummary& summary, const std::string& rule);

}  // namespace retentiond::test
