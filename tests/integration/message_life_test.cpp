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

namespace {

// A message of `user` in `room`: answering `reply_to`, in the thread of `thread` (0: none).
transport::Publish said(const std::string& room, const std::string& user, const std::string& body,
                        std::uint64_t reply_to, std::uint64_t thread) {
  transport::Publish p{room, user, {}, body};
  p.reply_to = reply_to;
  p.thread = thread;
  return p;
}

std::vector<std::uint64_t> seqs(const std::vector<transport::RoomMessage>& page) {
  std::vector<std::uint64_t> out;
  for (const auto& m : page) out.push_back(m.seq);
  return out;
}

}  // namespace

TEST(Threads, RepliesAndThreadsAreMessagesTheRootSumsUpAndHistoryPagesOneThread) {
  TempDir data;
  NodeProcess node(data.path(), args());
  client::Client ann(as_user(node, "ann")), bob(as_user(node, "bob")), cy(as_user(node, "cy"));
  ASSERT_TRUE(ann.create_room("r", "ann"));
  ASSERT_TRUE(bob.join("r", "bob"));
  ASSERT_TRUE(cy.join("r", "cy"));
  ASSERT_TRUE(cy.subscribe("r", 0));
  ASSERT_EQ(ann.publish("r", "ann", "lunch?")->seq, 1u);
  ASSERT_EQ(bob.publish("r", "bob", "other topic")->seq, 2u);
  ASSERT_EQ(bob.publish(said("r", "bob", "yes", 1, 1))->seq, 3u);
  ASSERT_EQ(cy.publish(said("r", "cy", "where?", 0, 1))->seq, 4u);
  ASSERT_EQ(ann.publish(said("r", "ann", "about that", 2, 0))->seq, 5u) << "a reply outside any thread";
  ASSERT_EQ(bob.publish(said("r", "bob", "same place", 4, 1))->seq, 6u);
  auto retry = said("r", "bob", "same place", 4, 1);
  retry.client_msg_id = "bob-t";
  ASSERT_EQ(bob.publish(retry)->seq, 7u);
  auto again = bob.publish(retry);
  ASSERT_TRUE(again && again->duplicate) << "idempotent by cmid, as any publish";
  EXPECT_EQ(again->seq, 7u);

  // Live: each with what it names.
  std::vector<transport::RoomMessage> live;
  while (live.size() < 7) {
    auto m = cy.next(client::Millis(5000));
    ASSERT_TRUE(m && *m) << "message " << live.size() + 1 << " did not come";
    live.push_back(**m);
  }
  EXPECT_EQ(live[2].entry.thread, 1u);
  EXPECT_EQ(live[2].entry.reply_to, 1u);
  EXPECT_EQ(live[4].entry.reply_to, 2u);
  EXPECT_EQ(live[4].entry.thread, 0u);

  // The room's history: the root sums its thread up; every message is there.
  auto page = all(ann, "r");
  ASSERT_EQ(page.size(), 7u);
  EXPECT_EQ(page[0].entry.replies, 4u);
  EXPECT_EQ(page[0].entry.last_reply, 7u);
  EXPECT_EQ(page[0].entry.repliers, (std::vector<std::string>{"bob", "cy"})) << "each replier once, in order";
  EXPECT_EQ(page[1].entry.replies, 0u) << "a message answered outside a thread has no thread";
  EXPECT_EQ(page[5].entry.reply_to, 4u);

  // One thread's pages: the root first; after, before and limit count the thread's seqs.
  auto thread = [&](client::HistoryQuery q) {
    q.thread = 1;
    auto r = ann.history("r", q);
    if (!r) throw std::runtime_error(r.error().message);
    return *r;
  };
  auto whole = thread({});
  EXPECT_EQ(seqs(whole.messages), (std::vector<std::uint64_t>{1, 3, 4, 6, 7}));
  EXPECT_FALSE(whole.more);
  auto newest = thread({2});
  EXPECT_EQ(seqs(newest.messages), (std::vector<std::uint64_t>{6, 7}));
  EXPECT_TRUE(newest.more);
  auto older = thread({2, 6});
  EXPECT_EQ(seqs(older.messages), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_TRUE(older.more);
  EXPECT_EQ(seqs(thread({2, 3}).messages), (std::vector<std::uint64_t>{1}));
  auto replies = thread({2, std::nullopt, 1});
  EXPECT_EQ(seqs(replies.messages), (std::vector<std::uint64_t>{3, 4})) << "after the root: its replies";
  EXPECT_TRUE(replies.more);
  EXPECT_EQ(seqs(thread({10, std::nullopt, 4}).messages), (std::vector<std::uint64_t>{6, 7}));
  EXPECT_EQ(whole.messages[0].entry.replies, 4u) << "the root as it is now";

  // A deleted reply stays in its thread, a tombstone, counted; a deleted root keeps its thread.
  ASSERT_TRUE(cy.remove("r", "cy", 4));
  ASSERT_TRUE(ann.remove("r", "ann", 1));
  auto after_delete = thread({});
  EXPECT_EQ(seqs(after_delete.messages), (std::vector<std::uint64_t>{1, 3, 4, 6, 7}));
  EXPECT_TRUE(after_delete.messages[0].entry.deleted);
  EXPECT_EQ(after_delete.messages[0].body, "");
  EXPECT_EQ(after_delete.messages[0].entry.replies, 4u);
  EXPECT_TRUE(after_delete.messages[2].entry.deleted);
  EXPECT_EQ(after_delete.messages[2].entry.thread, 1u);

  // After a restart (kill -9), as it was.
  node.kill_hard();
  NodeProcess again_node(data.path(), args());
  client::Client ann2(as_user(again_node, "ann"));
  auto restarted = ann2.history("r", client::HistoryQuery{0, std::nullopt, std::nullopt, 1});
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_EQ(seqs(restarted->messages), (std::vector<std::uint64_t>{1, 3, 4, 6, 7}));
  EXPECT_EQ(restarted->messages[0].entry.repliers, (std::vector<std::string>{"bob", "cy"}));
}

TEST(Threads, EachBadReferenceRefusesWithItsCodeAndStoresNothing) {
  TempDir data;
  NodeProcess node(data.path(), args());
  client::Client ann(as_user(node, "ann")), bob(as_user(node, "bob"));
  ASSERT_TRUE(ann.create_room("r", "ann"));
  ASSERT_TRUE(ann.create_room("other", "ann"));
  ASSERT_TRUE(bob.join("r", "bob"));
  ASSERT_EQ(ann.publish("r", "ann", "root")->seq, 1u);
  ASSERT_EQ(bob.publish(said("r", "bob", "in it", 0, 1))->seq, 2u);
  ASSERT_EQ(bob.react("r", "bob", 1, "ok")->seq, 3u);
  ASSERT_EQ(bob.publish("r", "bob", "gone soon")->seq, 4u);
  ASSERT_EQ(bob.remove("r", "bob", 4)->seq, 5u);
  ASSERT_EQ(ann.publish("other", "ann", "elsewhere")->seq, 1u);

  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 99, 0))), errc::no_such_message) << "no message there yet";
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 0, 99))), errc::no_such_message);
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 3, 0))), errc::no_such_message) << "a reaction is not a message";
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 0, 3))), errc::no_such_message);
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 4, 0))), errc::message_deleted);
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 0, 4))), errc::message_deleted);
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 0, 2))), errc::nested_thread) << "threads do not nest";
  EXPECT_EQ(code(bob.publish(said("r", "bob", "x", 4, 1))), errc::message_deleted) << "both are checked";
  EXPECT_EQ(code(ann.publish(said("other", "ann", "x", 0, 2))), errc::no_such_message)
      << "a seq names a message of the publish's own room";
  transport::Publish edit{"r", "ann", {}, "y"};
  edit.kind = EntryKind::edit;
  edit.target = 1;
  edit.thread = 1;
  EXPECT_EQ(code(ann.publish(edit)), errc::bad_field) << "an edit has no thread";
  EXPECT_EQ(code(ann.history("r", client::HistoryQuery{0, std::nullopt, std::nullopt, 2})), errc::no_such_message)
      << "a message in a thread is no root";
  EXPECT_EQ(code(ann.history("r", client::HistoryQuery{0, std::nullopt, std::nullopt, 50})), errc::no_such_message);
  auto last = ann.last_seq("r");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 5u) << "no refusal took a seq";
  auto root = ann.history("r", client::HistoryQuery{0, std::nullopt, std::nullopt, 1});
  ASSERT_TRUE(root);
  EXPECT_EQ(root->messages.at(0).entry.replies, 1u) << "refused replies counted nowhere";
}
