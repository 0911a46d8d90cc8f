// A message's life (docs/PROTOCOL.md 4.7.2) on a real node, through real clients acting
// `as` users: edits, deletes and reactions are room entries with seqs of their own,
// seen live in order, idempotent by cmid; history shows each message as it is now; every
// rule's refusal has its code and stores nothing; a delete is a delete after kill -9.
#include <gtest/gtest.h>

#include <optional>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;

namespace {

client::ClientOptions as_user(const NodeProcess& node, const std::string& user) {
  client::ClientOptions o = switchboard::testing::options_for(node);
  o.as = user;
  return o;
}

template <class T>
errc code(const Result<T>& r) {
  return r ? errc::ok : r.error().code;
}

std::vector<transport::RoomMessage> all(client::Client& c, const std::string& room) {
  return switchboard::testing::full_history(c, room);
}

std::vector<std::string> args(std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"--durability", "sync", "--bridge", "off", "--metrics", "off"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

}  // namespace

TEST(MessageLife, EditsDeletesAndReactionsAreEntriesSeenLiveAndInHistoryAsTheyAreNow) {
  TempDir data;
  NodeProcess node(data.path(), args());
  client::Client ann(as_user(node, "ann")), bob(as_user(node, "bob")), cy(as_user(node, "cy"));
  ASSERT_TRUE(ann.create_room("r", "ann"));
  ASSERT_TRUE(bob.join("r", "bob"));
  ASSERT_TRUE(ann.add_member("r", "cy", Role::reader));
  ASSERT_TRUE(cy.subscribe("r", 0));

  ASSERT_EQ(ann.publish("r", "ann", "helo")->seq, 1u);
  ASSERT_EQ(bob.publish("r", "bob", "hi ann")->seq, 2u);
  auto edited = ann.edit("r", "ann", 1, "hello");
  ASSERT_TRUE(edited) << edited.error().message;
  EXPECT_EQ(edited->seq, 3u) << "an edit takes the room's next seq";
  EXPECT_EQ(bob.react("r", "bob", 1, "👍")->seq, 4u);
  EXPECT_EQ(ann.react("r", "ann", 1, "👍")->seq, 5u);
  EXPECT_EQ(ann.react("r", "ann", 2, "🎉")->seq, 6u);
  EXPECT_EQ(ann.react("r", "ann", 2, "🎉", false)->seq, 7u);
  EXPECT_EQ(bob.remove("r", "bob", 2)->seq, 8u);

  // A retry with the cmid of one stored is answered with its seq, and stored once.
  transport::Publish retry{"r", "bob", "bob-react-1", {}};
  retry.kind = EntryKind::react;
  retry.target = 1;
  retry.key = "❤";
  auto first = bob.publish(retry);
  auto again = bob.publish(retry);
  ASSERT_TRUE(first && again);
  EXPECT_EQ(first->seq, 9u);
  EXPECT_EQ(again->seq, 9u);
  EXPECT_TRUE(again->duplicate);

  // Live: every entry once, in seq order, with its kind.
  std::vector<transport::RoomMessage> live;
  while (live.size() < 9) {
    auto m = cy.next(client::Millis(5000));
    ASSERT_TRUE(m && *m) << "entry " << live.size() + 1 << " did not come";
    live.push_back(**m);
  }
  for (std::uint64_t i = 0; i < live.size(); ++i) EXPECT_EQ(live[i].seq, i + 1);
  EXPECT_EQ(live[2].entry.kind, EntryKind::edit);
  EXPECT_EQ(live[2].entry.target, 1u);
  EXPECT_EQ(live[2].body, "hello");
  EXPECT_EQ(live[3].entry.kind, EntryKind::react);
  EXPECT_EQ(live[3].entry.key, "👍");
  EXPECT_TRUE(live[3].entry.on);
  EXPECT_FALSE(live[6].entry.on) << "a reaction taken back";
  EXPECT_EQ(live[7].entry.kind, EntryKind::remove);
  EXPECT_EQ(live[7].entry.target, 2u);

  // History: each message as it is now, and the entries themselves.
  auto as_bob = all(bob, "r");
  ASSERT_EQ(as_bob.size(), 9u);
  EXPECT_EQ(as_bob[0].body, "hello");
  EXPECT_EQ(as_bob[0].entry.edited_ts, edited->ts_ms);
  EXPECT_EQ(as_bob[0].entry.reactions, (std::vector<Reaction>{{"❤", 1}, {"👍", 2}}));
  EXPECT_EQ(as_bob[0].entry.mine, (std::vector<std::string>{"❤", "👍"})) << "bob's own reactions";
  EXPECT_EQ(all(ann, "r")[0].entry.mine, (std::vector<std::string>{"👍"}));
  EXPECT_TRUE(all(cy, "r")[0].entry.mine.empty());
  EXPECT_TRUE(as_bob[1].entry.deleted);
  EXPECT_EQ(as_bob[1].body, "");
  EXPECT_EQ(as_bob[1].user, "bob") << "a tombstone keeps its sender and time";
  EXPECT_TRUE(as_bob[1].entry.reactions.empty());
  EXPECT_EQ(as_bob[2].entry.kind, EntryKind::edit);
}

TEST(MessageLife, EachRuleRefusesWithItsCodeAndStoresNothing) {
  TempDir data;
  NodeProcess node(data.path(), args({"--limit", "max_reaction_keys=2", "--limit", "edit_window_s=1"}));
  client::Client ann(as_user(node, "ann")), bob(as_user(node, "bob")), cy(as_user(node, "cy")),
      eve(as_user(node, "eve"));
  ASSERT_TRUE(ann.create_room("r", "ann"));
  ASSERT_TRUE(bob.join("r", "bob"));
  ASSERT_TRUE(ann.add_member("r", "cy", Role::reader));
  ASSERT_EQ(ann.publish("r", "ann", "ann's")->seq, 1u);
  ASSERT_EQ(bob.publish("r", "bob", "bob's")->seq, 2u);
  ASSERT_EQ(bob.react("r", "bob", 1, "a")->seq, 3u);
  ASSERT_EQ(bob.remove("r", "bob", 2)->seq, 4u);

  EXPECT_EQ(code(bob.edit("r", "bob", 1, "mine now")), errc::forbidden) << "another user's message";
  EXPECT_EQ(code(bob.remove("r", "bob", 1)), errc::forbidden) << "a member deletes only their own";
  EXPECT_EQ(code(cy.react("r", "cy", 1, "b")), errc::forbidden) << "readers do none of it";
  EXPECT_EQ(code(eve.react("r", "eve", 1, "b")), errc::not_member);
  EXPECT_EQ(code(ann.edit("r", "ann", 99, "x")), errc::no_such_message);
  EXPECT_EQ(code(ann.edit("r", "ann", 3, "x")), errc::no_such_message) << "a reaction is not a message";
  EXPECT_EQ(code(ann.edit("nowhere", "ann", 1, "x")), errc::no_such_room);
  EXPECT_EQ(code(bob.remove("r", "bob", 2)), errc::message_deleted) << "deleting twice";
  EXPECT_EQ(code(bob.edit("r", "bob", 2, "x")), errc::message_deleted);
  EXPECT_EQ(code(ann.react("r", "ann", 2, "a")), errc::message_deleted);
  EXPECT_EQ(code(bob.react("r", "bob", 1, "a")), errc::no_change) << "one reaction per user, message and key";
  EXPECT_EQ(code(ann.react("r", "ann", 1, "z", false)), errc::no_change);
  ASSERT_TRUE(ann.react("r", "ann", 1, "b"));
  EXPECT_EQ(code(ann.react("r", "ann", 1, "c")), errc::limit_reached) << "max_reaction_keys = 2";
  EXPECT_TRUE(bob.react("r", "bob", 1, "b")) << "a key there already is no new key";
  // Bad fields, refused by the codec.
  EXPECT_EQ(code(ann.react("r", "ann", 1, "")), errc::bad_field);
  EXPECT_EQ(code(ann.react("r", "ann", 1, std::string(33, 'k'))), errc::bad_field);
  EXPECT_EQ(code(ann.react("r", "ann", 1, "tab\there")), errc::bad_field);
  EXPECT_EQ(code(ann.edit("r", "ann", 0, "x")), errc::bad_field);
  auto last = ann.last_seq("r");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 6u) << "no refusal took a seq";

  // Past the edit window (1 s here): too late for an edit; the owner deletes anything.
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_EQ(bob.publish("r", "bob", "old words")->seq, 7u);
  std::optional<errc> late;
  while (std::chrono::steady_clock::now() - sent < std::chrono::seconds(5)) {
    late = code(bob.edit("r", "bob", 7, "new words"));
    if (*late != errc::ok) break;
  }
  EXPECT_EQ(late, errc::too_late);
  EXPECT_TRUE(ann.remove("r", "ann", 7)) << "an owner deletes any message, at any time";
}

TEST(MessageLife, ADeleteAcknowledgedIsADeleteAfterKillDashNine) {
  TempDir data;
  std::uint64_t deleted_seq = 0;
  {
    NodeProcess node(data.path(), args());
    client::Client ann(as_user(node, "ann"));
    ASSERT_TRUE(ann.create_room("r", "ann"));
    ASSERT_EQ(ann.publish("r", "ann", "regrettable")->seq, 1u);
    ASSERT_TRUE(ann.edit("r", "ann", 1, "still regrettable"));
    auto deleted = ann.remove("r", "ann", 1);
    ASSERT_TRUE(deleted);
    deleted_seq = deleted->seq;
    node.kill_hard();
  }
  NodeProcess node(data.path(), args());
  client::Client ann(as_user(node, "ann"));
  auto page = all(ann, "r");
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[2].seq, deleted_seq);
  EXPECT_TRUE(page[0].entry.deleted);
  EXPECT_EQ(page[0].body, "");
  EXPECT_TRUE(page[1].entry.deleted) << "the edit's body went with it";
  EXPECT_EQ(page[1].body, "");
  EXPECT_EQ(code(ann.remove("r", "ann", 1)), errc::message_deleted) << "it stays deleted";
}

TEST(MessageLife, ADeletedMessageCountsAsAMentionForNoOne) {
  TempDir data;
  NodeProcess node(data.path(), args());
  client::Client ann(as_user(node, "ann")), bob(as_user(node, "bob"));
  ASSERT_TRUE(ann.create_room("r", "ann"));
  ASSERT_TRUE(bob.join("r", "bob"));
  transport::Publish mention{"r", "ann", "m1", "@bob look"};
  mention.mentions = {"bob"};
  ASSERT_TRUE(ann.publish(mention));
  auto mentions = [&] {
    auto rooms = bob.rooms_summary("bob");
    if (!rooms || rooms->summaries.size() != 1) throw std::runtime_error("no summary");
    return rooms->summaries[0].mentions;
  };
  EXPECT_EQ(mentions(), 1u);
  ASSERT_TRUE(ann.remove("r", "ann", 1));
  EXPECT_EQ(mentions(), 0u);
  node.kill_hard();
  NodeProcess again(data.path(), args());
  client::Client bob_again(as_user(again, "bob"));
  auto rooms = bob_again.rooms_summary("bob");
  ASSERT_TRUE(rooms);
  ASSERT_EQ(rooms->summaries.size(), 1u);
  EXPECT_EQ(rooms->summaries[0].mentions, 0u) << "nor after a restart";
}
