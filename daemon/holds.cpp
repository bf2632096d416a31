#include "daemon/holds.hpp"

namespace retentiond {

HeldSubjects held_subjects_of(const Rule& rule, const std::vector<Hold>& active_holds) {
  HeldSubjects held;
  for (const Hold& hold : active_holds) {
    if (hold.rule && *hold.rule != rule.id)
      continue;
    if (!hold.subject)
      held.suspended = true;
    else if (rule.subject_column)
      held.subjects.push_back(*hold.subject);
  }
  return held;
}

}  // namespace retentiond
