#pragma once

#include "daemon/config.hpp"
#include "daemon/state_store.hpp"

#include <string>
#include <vector>

namespace retentiond {

// What the active holds mean for one rule: the subjects it must spare, or (a hold with --all)
// the whole rule suspended.
struct HeldSubjects {
  std::vector<std::string> subjects;
  bool suspended = false;
};

// Applies `active_holds` to `rule`: a hold names the rule or every rule; a subject hold counts
// only for rules with a subject_column.
HeldSubjects held_subjects_of(const Rule& rule, const std::vector<Hold>& active_holds);

}  // namespace retentiond
