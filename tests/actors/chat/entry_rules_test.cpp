// EntryRules: the rules of edits, deletes and reactions, and the changes a lookup could
// not see (in batches not durable when it was answered, or accepted after) counted in,
// those it saw not counted twice.
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
  TargetState anns = message_of("ann", 1000);
  const auto m = rules.fold(change("ann", EntryKind::edit, 1), anns);
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
  TargetState unused = message_of("ann", 0);
  const auto m = rules.fold(change("ann", EntryKind::edit, 1), unused);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::edit, 1), message_of("ann", 0), m, Role::member, 1e12)), errc::ok);
  EXPECT_EQ(code(rules.check(change("ann", EntryKind::remove, 1), message_of("ann", 0), m, Role::member, 1e12)), errc::ok);
}

TEST(EntryRules, ReactionsOnePerUserAndKeyAndAtMostSoManyKeys) {
  EntryRules rules(limits());
  TargetState t = message_of("ann");
  t.reactions = {{"a", 3}, {"b", 1}};
  const auto m = rules.fold(change("bob", EntryKind::react, 1, "a"), t);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a"), t, m, Role::member, 2000)), errc::ok);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "c"), t, m, Role::member, 2000)), errc::limit_reached);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a", false), t, m, Role::member, 2000)), errc::no_change);
  t.reacted = true;
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a"), t, m, Role::member, 2000)), errc::no_change);
  EXPECT_EQ(code(rules.check(change("bob", EntryKind::react, 1, "a", false), t, m, Role::member, 2000)), errc::ok);
}

TEST(EntryRules, ChangesNotDurableWhenALookupIsAnsweredAndThoseAfterCountAndDurableOnesDoNot) {
  EntryRules rules(limits());
  const auto edit = change("ann", EntryKind::edit, 1);
  // A delete of message 1 is accepted (batch 7); a lookup answered before batch 7 is
  // durable did not see it: it is counted in.
  rules.accepted(change("ann", EntryKind::remove, 1), 7);
  TargetState early = message_of("ann");
  const auto early_mark = rules.fold(edit, early);
  EXPECT_TRUE(early.deleted);
  EXPECT_EQ(code(rules.check(edit, early, early_mark, Role::member, 2000)), errc::message_deleted);
  TargetState other = message_of("ann");
  const auto other_mark = rules.fold(change("ann", EntryKind::edit, 2), other);
  EXPECT_FALSE(other.deleted) << "another message";
  // Once batch 7 is durable a lookup sees the delete in the store: not counted twice
  // (nor is anything else; here the store says "not deleted" to show it is not added).
  rules.durable(7);
  TargetState late = message_of("ann");
  const auto late_mark = rules.fold(edit, late);
  EXPECT_FALSE(late.deleted);
  EXPECT_EQ(code(rules.check(edit, late, late_mark, Role::member, 2000)), errc::ok);
  // A change accepted after a lookup was answered counts at its check.
  rules.accepted(change("bob", EntryKind::remove, 1), 8);
  EXPECT_EQ(code(rules.check(edit, late, late_mark, Role::member, 2000)), errc::message_deleted);
  for (auto m : {early_mark, other_mark, late_mark}) rules.unmark(m);
  EXPECT_EQ(rules.held(), 1u) << "batch 8 is not durable yet";
  rules.rolled_back(8);
  EXPECT_EQ(rules.held(), 0u);
  TargetState after = message_of("ann");
  rules.unmark(rules.fold(edit, after));
  EXPECT_FALSE(after.deleted) << "a batch not stored changed nothing";
}

TEST(EntryRules, ReactionsNotYetDurableMoveTheCountsALookupFound) {
  EntryRules rules(limits(60, 0, 2));
  rules.accepted(change("bob", EntryKind::react, 1, "b"), 1);  // a second key, not durable yet
  TargetState t = message_of("ann");
  t.reactions = {{"a", 1}};
  const auto cy = change("cy", EntryKind::react, 1, "c");
  const auto m = rules.fold(cy, t);
  EXPECT_EQ(t.reactions, (std::vector<Reaction>{{"a", 1}, {"b", 1}}));
  EXPECT_EQ(code(rules.check(cy, t, m, Role::member, 2000)), errc::limit_reached);
  TargetState bobs = message_of("ann");
  const auto bob = change("bob", EntryKind::react, 1, "b");
  const auto bm = rules.fold(bob, bobs);
  EXPECT_TRUE(bobs.reacted) << "bob's own reaction, not durable yet";
  EXPECT_EQ(code(rules.check(bob, bobs, bm, Role::member, 2000)), errc::no_change);
  rules.accepted(change("bob", EntryKind::react, 1, "b", false), 2);  // taken back: the key is gone
  EXPECT_EQ(code(rules.check(cy, t, m, Role::member, 2000)), errc::ok);
  EXPECT_EQ(code(rules.check(bob, bobs, bm, Role::member, 2000)), errc::ok);
  rules.durable(1);
  rules.durable(2);
  EXPECT_EQ(rules.held(), 1u) << "the take-back is still news to the two lookups answered before it "
                                  "(the first reaction was counted into both)";
  rules.unmark(m);
  rules.unmark(bm);
  EXPECT_EQ(rules.held(), 0u);
}

}  // namespace

TEST(EntryRules, AMessageInAThreadOrAnsweringAnotherNamesAMessageNotDeletedAndARootInNoThread) {
  EntryRules rules(limits());
  auto said = [](std::uint64_t reply_to, std::uint64_t thread) {
    transport::Publish p{"r", "bob", "c", "hi"};
    p.reply_to = reply_to;
    p.thread = thread;
    return p;
  };
  EXPECT_EQ(EntryRules::looked_up(said(0, 0)), (std::pair<std::uint64_t, std::uint64_t>{0, 0})) << "nothing to look up";
  EXPECT_EQ(EntryRules::looked_up(said(3, 0)), (std::pair<std::uint64_t, std::uint64_t>{3, 0}));
  EXPECT_EQ(EntryRules::looked_up(said(3, 1)), (std::pair<std::uint64_t, std::uint64_t>{1, 3}));
  EXPECT_EQ(EntryRules::looked_up(said(1, 1)), (std::pair<std::uint64_t, std::uint64_t>{1, 0})) << "once";
  TargetState root = message_of("ann"), reply = message_of("cy");
  reply.thread = 1;
  EXPECT_EQ(code(rules.check(said(3, 1), root, 0, Role::member, 2000, &reply)), errc::ok)
      << "answering a message of the thread, in it";
  EXPECT_EQ(code(rules.check(said(0, 3), reply, 0, Role::member, 2000)), errc::nested_thread);
  EXPECT_EQ(code(rules.check(said(3, 0), reply, 0, Role::member, 2000)), errc::ok) << "a reply may answer anything";
  EXPECT_EQ(code(rules.check(said(0, 9), TargetState{}, 0, Role::member, 2000)), errc::no_such_message);
  TargetState gone = message_of("cy");
  EXPECT_EQ(code(rules.check(said(3, 1), root, 0, Role::member, 2000, &gone)), errc::ok);
  gone.deleted = true;
  EXPECT_EQ(code(rules.check(said(3, 1), root, 0, Role::member, 2000, &gone)), errc::message_deleted)
      << "both are checked";
  // A delete of the root not durable yet when the lookup was answered is counted in.
  rules.accepted(change("ann", EntryKind::remove, 1), 5);
  TargetState looked = message_of("ann");
  const auto m = rules.fold(said(0, 1), looked);
  EXPECT_EQ(code(rules.check(said(0, 1), looked, m, Role::member, 2000)), errc::message_deleted);
  rules.unmark(m);
}
