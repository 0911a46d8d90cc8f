// EntryRules: the rules of edits, deletes and reactions, and the changes a lookup could
// not see (accepted after it went) counted in, those it saw not counted twice.
#include "switchboard/actors/chat/entry_rules.hpp"

#include <gtest/gtest.h>

namespace {

using namespace switchboard;
using switchboard::actors::EntryRules;
using switchboard::persistence::TargetState;

transport::Publish change(const std::string& user, EntryKind kind, std::uint64_t target, std::string key = {},
                          bool on = true) {
  transport::Publish p{"r", user, "c", {}};
  p.kind = kind;
  p.target = target;
  p.key = std::move(key);
  p.on = on;
  return p;
}

TargetState message_of(const std::string& user, std::uint64_t ts_ms = 1000) {
  TargetState t;
  t.found = true;
  t.user = user;
  t.ts_ms = ts_ms;
  return t;
}

errc code(const std::optional<Error>& refusal) { return refusal ? refusal->code : errc::ok; }

transport::Limits limits(std::uint64_t edit_window_s = 60, std::uint64_t delete_window_s = 0, std::size_t keys = 2) {
  transport::Limits l;
  l.edit_window_s = edit_window_s;
  l.delete_window_s = delete_window_s;
  l.max_reaction_keys = keys;
  return l;
}

TEST(EntryRules, WhoMayEditAndDeleteWhatAndWhen) {
  EntryRules rules(limits(60, 120));
  const TargetState anns = message_of("ann", 1000);
  const auto m = rules.mark();
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), anns, m, Role::member, 61'000)), errc::ok);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), anns, m, Role::member, 61'001)), errc::too_late);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::edit, 1), anns, m, Role::owner, 2000)), errc::forbidden)
      << "not even an owner edits another's message";
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::remove, 1), anns, m, Role::member, 121'000)), errc::ok);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::remove, 1), anns, m, Role::member, 121'001)), errc::too_late);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::remove, 1), anns, m, Role::member, 2000)), errc::forbidden);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::remove, 1), anns, m, Role::owner, 1e9)), errc::ok)
      << "an owner deletes any message at any time";
  TargetState none;
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 9), none, m, Role::member, 2000)), errc::no_such_message);
  TargetState edit = anns;
  edit.kind = EntryKind::edit;
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::remove, 3), edit, m, Role::owner, 2000)), errc::no_such_message);
  TargetState deleted = anns;
  deleted.deleted = true;
  for (auto kind : {EntryKind::edit, EntryKind::remove, EntryKind::react})
    EXPECT_EQ(code(rules.check(change("ann", kind, 1, "k"), deleted, m, Role::owner, 2000)), errc::message_deleted);
  rules.unmark(m);
}

TEST(EntryRules, NoBoundWhenAWindowIsZero) {
  EntryRules rules(limits(0, 0));
  const auto m = rules.mark();
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), message_of("ann", 0), m, Role::member, 1e12)), errc::ok);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::remove, 1), message_of("ann", 0), m, Role::member, 1e12)), errc::ok);
}

TEST(EntryRules, ReactionsOnePerUserAndKeyAndAtMostSoManyKeys) {
  EntryRules rules(limits());
  TargetState t = message_of("ann");
  t.reactions = {{"a", 3}, {"b", 1}};
  const auto m = rules.mark();
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a"), t, m, Role::member, 2000)), errc::ok);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "c"), t, m, Role::member, 2000)), errc::limit_reached);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a", false), t, m, Role::member, 2000)), errc::no_change);
  t.reacted = true;
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a"), t, m, Role::member, 2000)), errc::no_change);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a", false), t, m, Role::member, 2000)), errc::ok);
}

TEST(EntryRules, ChangesAcceptedAfterALookupWentCountAndThoseBeforeDoNot) {
  EntryRules rules(limits());
  const TargetState anns = message_of("ann");
  // A lookup goes; then a delete of the same message is accepted (its batch went after
  // the lookup: the lookup did not see it).
  const auto early = rules.mark();
  const auto first = rules.mark();
  rules.accepted(change("ann", EntryKind::remove, 1), 7);
  rules.unmark(first);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), anns, early, Role::member, 2000)), errc::message_deleted);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 2), anns, early, Role::member, 2000)), errc::ok)
      << "another message";
  // A lookup that went after the delete was accepted saw it in the store (as found):
  // the delete is not counted again.
  const auto late = rules.mark();
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), anns, late, Role::member, 2000)), errc::ok);
  // The delete's batch was not stored: it never happened.
  rules.rolled_back(7);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), anns, early, Role::member, 2000)), errc::ok);
  rules.unmark(early);
  rules.unmark(late);
  EXPECT_EQ(rules.held(), 0u) << "nothing held with no lookup outstanding";
}

TEST(EntryRules, ReactionsAcceptedSinceALookupMoveTheCountsItFound) {
  EntryRules rules(limits(60, 0, 2));
  TargetState t = message_of("ann");
  t.reactions = {{"a", 1}};
  const auto m = rules.mark();
  rules.accepted(change("bob", EntryKind::react, 1, "b"), 1);  // a second key
  EXPECT_EQ(code(rules.check(change("cy", EntryKind::react, 1, "c"), t, m, Role::member, 2000)), errc::limit_reached);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "b"), t, m, Role::member, 2000)), errc::no_change)
      << "bob's own reaction, accepted since";
  rules.accepted(change("bob", EntryKind::react, 1, "b", false), 2);  // taken back: the key is gone
  EXPECT_EQ(code(rules.check(change("cy", EntryKind::react, 1, "c"), t, m, Role::member, 2000)), errc::ok);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "b"), t, m, Role::member, 2000)), errc::ok);
  EXPECT_EQ(rules.held(), 2u);
  rules.unmark(m);
  EXPECT_EQ(rules.held(), 0u);
}

}  // namespace
