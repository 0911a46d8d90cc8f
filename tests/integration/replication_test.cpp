// Replicated shards (docs/REPLICATION.md), with real node processes on loopback: what
// a primary acknowledged with ack = "replicated" is on its replica, which serves it
// while the primary is down; a primary without enough replicas refuses writes at
// once; a replica that was away catches up. Failover: a primary killed under load is
// replaced by a replica with nothing acknowledged lost or doubled, and rejoins; a
// replica cut off on its own is not promoted.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "client_helpers.hpp"
#include "cluster_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::Cluster;
using switchboard::testing::ClusterSettings;
using switchboard::testing::while_unavailable;
using switchboard::testing::whole_history;
using Clock = std::chrono::steady_clock;

namespace {


std::vector<std::uint64_t> seqs_of(client::Client& c, const std::string& room) {
  std::vector<std::uint64_t> out;
  for (const auto& m : whole_history(c, room)) out.push_back(m.seq);
  return out;
}

std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 1; i <= n; ++i) out.push_back(i);
  return out;
}

/// Publishes `n` messages to `room` through `c`, each retried (same client message id)
/// while unavailable; returns the acked seqs.
std::vector<std::uint64_t> publish_n(client::Client& c, const std::string& room, int n, const std::string& tag) {
  std::vector<std::uint64_t> acked;
  for (int i = 0; i < n; ++i) {
    const std::string cmid = tag + "-" + std::to_string(i);
    auto ack = while_unavailable([&] { return c.publish(room, "ann", "message " + cmid, cmid); });
    EXPECT_TRUE(ack) << ack.error().message;
    if (ack) acked.push_back(ack->seq);
  }
  return acked;
}

}  // namespace

TEST(Replication, WhatThePrimaryAckedIsOnTheReplicaWhichServesItWhileThePrimaryIsDown) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\"]\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "replicated");
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
  ASSERT_TRUE(on_a.join(room, "bob"));
  EXPECT_EQ(publish_n(on_a, room, 300, "m"), one_to(300));
  auto marked = on_a.mark_read(room, "bob", 200);
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_EQ(marked->unread, 100u);
  auto mention = on_a.publish(transport::Publish{room, "ann", "", "hi @bob", {"bob"}});
  ASSERT_TRUE(mention) << mention.error().message;
  EXPECT_EQ(mention->seq, 301u);

  cluster.kill("a");  // the primary: no clean stop, no goodbye
  client::Client on_b(cluster.client_of("b"));
  EXPECT_EQ(seqs_of(on_b, room), one_to(301)) << "every acked message, from the replica";
  // Read markers are replicated like membership: bob's, and ann's own (her messages);
  // and the mention of bob with its message.
  auto rooms = while_unavailable([&] { return on_b.rooms_summary("bob"); });
  ASSERT_TRUE(rooms) << rooms.error().message;
  EXPECT_EQ(rooms->missing, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(rooms->missing_shards.empty()) << "b holds a replica of a's shard";
  ASSERT_EQ(rooms->summaries.size(), 1u);
  EXPECT_EQ(rooms->summaries[0].read_seq, 200u);
  EXPECT_EQ(rooms->summaries[0].unread, 101u);
  EXPECT_EQ(rooms->summaries[0].mentions, 1u);
  EXPECT_EQ(rooms->summaries[0].preview, "hi @bob");
  auto anns = while_unavailable([&] { return on_b.rooms_summary("ann"); });
  ASSERT_TRUE(anns);
  ASSERT_EQ(anns->summaries.size(), 1u);
  EXPECT_EQ(anns->summaries[0].unread, 0u);
  auto last = while_unavailable([&] { return on_b.last_seq(room); });
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(*last, 301u);
  auto members = while_unavailable([&] { return on_b.members(room); });
  ASSERT_TRUE(members) << members.error().message;
  EXPECT_EQ(*members, (std::vector<std::string>{"ann", "bob"}));
  auto publish = on_b.publish(room, "ann", "while the primary is down");
  ASSERT_FALSE(publish) << "with one replica, the shard does not fail over: b alone is no majority of a and b";
  EXPECT_EQ(publish.error().code, errc::unavailable);
}

TEST(Replication, WithoutItsReplicaAPrimaryRefusesWritesAtOnceAndTheReplicaCatchesUpWhenBack) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\"]\nack = \"replicated\"\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "refused");
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
  EXPECT_EQ(publish_n(on_a, room, 50, "before"), one_to(50));

  cluster.kill("b");
  // Once a sees b gone, a write is refused at once, and nothing is stored for it.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  Result<transport::PublishOk> refused = make_error(errc::ok, "");
  do refused = on_a.publish(room, "ann", "no replica", "refused-1");
  while (refused && Clock::now() < deadline);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::unavailable);
  EXPECT_NE(refused.error().message.find("replicas"), std::string::npos) << refused.error().message;
  const auto asked = Clock::now();
  auto again = on_a.publish(room, "ann", "no replica", "refused-2");
  EXPECT_FALSE(again);
  EXPECT_LT(Clock::now() - asked, std::chrono::milliseconds(500 * switchboard::testing::kSlowdown))
      << "refused at once, not after a timeout";

  cluster.start("b");
  // `unavailable` means "not acknowledged; the same client message id again is safe":
  // refused-1 may have been stored (at seq 51) before a saw b go, and then it is
  // acknowledged with that seq, once b has it; it is never stored twice.
  auto retried = while_unavailable([&] { return on_a.publish(room, "ann", "no replica", "refused-1"); });
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->seq, 51u);
  auto more = publish_n(on_a, room, 49, "after");
  ASSERT_EQ(more.size(), 49u);
  EXPECT_EQ(more.front(), 52u) << "refused-2 took no seq";
  cluster.kill("a");
  client::Client on_b(cluster.client_of("b"));
  EXPECT_EQ(seqs_of(on_b, room), one_to(100)) << "the replica has what it missed, and everything acked after";
}

TEST(Replication, WithAckLocalAReplicaThatWasDownCatchesUpAndShardsShowsItsLag) {
  Cluster cluster(ClusterSettings{
      .shard_lines = {{"s1", "replicas = [\"b\", \"c\"]\n"}, {"s2", "replicas = [\"c\"]\nack = \"local\"\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("b", "local");
  client::Client on_b(cluster.client_of("b"));
  ASSERT_TRUE(while_unavailable([&] { return on_b.create_room(room, "ann"); }));

  cluster.kill("c");
  EXPECT_EQ(publish_n(on_b, room, 100, "m"), one_to(100)) << "ack = local: the primary acknowledges alone";

  client::Client on_a(cluster.client_of("a"));
  auto lag_of_c = [&](const std::string& shard) -> std::optional<std::uint64_t> {
    auto list = on_a.shards();
    if (!list) return std::nullopt;
    for (const auto& s : list->shards)
      if (s.name == shard && s.primary_up)
        for (const auto& r : s.replicas)
          if (r.node == "c" && r.up) return s.lsn - r.lsn;
    return std::nullopt;  // c (or the primary) not up, as far as the answer goes
  };
  // Right after the start, a may not have reached b yet: b's shards show once it has.
  auto list = on_a.shards();
  for (const auto deadline = Clock::now() + std::chrono::seconds(20);
       list && list->missing != std::vector<std::string>{"c"} && Clock::now() < deadline;)
    list = on_a.shards();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->missing, std::vector<std::string>{"c"});
  ASSERT_EQ(list->shards.size(), 3u);
  const auto& s2 = list->shards[1];
  EXPECT_EQ(s2.name, "s2");
  EXPECT_EQ(s2.primary, "b");
  EXPECT_EQ(s2.ack, "local");
  EXPECT_EQ(s2.lsn, 101u) << "one entry for the room's creation, one per message";
  ASSERT_EQ(s2.replicas.size(), 1u);
  EXPECT_EQ(s2.replicas[0].node, "c");
  EXPECT_EQ(list->shards[0].ack, "replicated");
  EXPECT_TRUE(list->shards[2].replicas.empty());

  cluster.start("c");
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (lag_of_c("s2") != std::optional<std::uint64_t>(0) && Clock::now() < deadline) continue;  // each look asks every node
  ASSERT_EQ(lag_of_c("s2"), std::optional<std::uint64_t>(0)) << "c caught up";

  auto printed = switchboard::testing::run_command(
      {"shards", "--keys", cluster.node("a").keys_dir(), "--connect", cluster.node("a").client_endpoint()});
  EXPECT_EQ(printed.status, 0) << printed.err;
  EXPECT_NE(printed.out.find("s2: primary b, ack local, log at 101\n  replica c: lag 0 (has 101)"), std::string::npos)
      << printed.out;

  cluster.kill("b");
  client::Client on_c(cluster.client_of("c"));
  EXPECT_EQ(seqs_of(on_c, room), one_to(100)) << "what c missed while it was down, from the primary's log";
}

// ---- failover -------------------------------------------------------------------------

namespace {

/// s1's primary and term as the nodes report them (asked through `c`), once a primary
/// answers; nullopt if none did within 30 s.
std::optional<std::pair<std::string, std::uint64_t>> primary_of_s1(client::Client& c,
                                                                    const std::string& not_this = {}) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    auto list = c.shards();
    if (list)
      for (const auto& s : list->shards)
        if (s.name == "s1" && s.primary_up && s.primary != not_this) return std::pair{s.primary, s.term};
  }
  return std::nullopt;
}

/// s1's replica `node` as its primary reports it: lag 0 and up; waits up to 60 s.
bool caught_up(client::Client& c, const std::string& node) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    auto list = c.shards();
    if (!list) continue;
    for (const auto& s : list->shards)
      if (s.name == "s1" && s.primary_up)
        for (const auto& r : s.replicas)
          if (r.node == node && r.up && r.lsn == s.lsn) return true;
  }
  return false;
}

/// Publishes until acknowledged, the same client message id each time: through a
/// failover a publish is refused (`unavailable`) or goes unanswered (`timeout`) for a
/// while, and either way it is safe to send again.
Result<transport::PublishOk> publish_through(client::Client& c, const std::string& room, const std::string& cmid,
                                             Clock::time_point deadline) {
  for (;;) {
    auto ack = c.publish(room, "ann", "message " + cmid, cmid);
    if (ack || (ack.error().code != errc::unavailable && ack.error().code != errc::timeout) || Clock::now() > deadline)
      return ack;
  }
}

/// What an honest history of the acknowledged publishes looks like: seqs 1..n with no
/// gap, every acknowledged client message id at the seq it was acknowledged with, and
/// no client message id twice.
void expect_history_holds(const std::vector<transport::RoomMessage>& history,
                          const std::map<std::string, std::uint64_t>& acked, const std::string& where) {
  std::map<std::string, std::uint64_t> stored;
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].seq, i + 1) << where << ": seqs continue with no gap";
    EXPECT_TRUE(stored.emplace(history[i].client_msg_id, history[i].seq).second)
        << where << ": " << history[i].client_msg_id << " is stored twice";
  }
  std::size_t missing = 0, moved = 0;
  for (const auto& [cmid, seq] : acked) {
    auto it = stored.find(cmid);
    if (it == stored.end()) ++missing;
    else if (it->second != seq) ++moved;
  }
  EXPECT_EQ(missing, 0u) << where << ": acknowledged messages missing";
  EXPECT_EQ(moved, 0u) << where << ": acknowledged messages at another seq than their acknowledgement's";
}

}  // namespace

TEST(Failover, APrimaryKilledUnderLoadIsReplacedAndNothingAcknowledgedIsLostOrDoubled) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\", \"c\"]\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "failover");
  client::Client on_b(cluster.client_of("b"));
  ASSERT_TRUE(while_unavailable([&] { return on_b.create_room(room, "ann"); }));
  client::Client subscriber(cluster.client_of("c"));
  ASSERT_TRUE(while_unavailable([&] { return subscriber.subscribe(room); }));
  auto first = primary_of_s1(on_b);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (std::pair<std::string, std::uint64_t>{"a", 1}));

  // Two publishers, through b and c (neither owns the room), 300 messages each.
  constexpr int kEach = 300;
  std::atomic<int> acked_count{0};
  std::map<std::string, std::uint64_t> acked[2];
  std::vector<std::string> failed[2];
  std::vector<std::thread> publishers;
  const std::string through[2] = {"b", "c"};
  // A failover takes a few seconds; the whole run, two minutes at most.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  for (int p = 0; p < 2; ++p)
    publishers.emplace_back([&, p, options = cluster.client_of(through[p])] {
      client::Client c(options);
      for (int i = 0; i < kEach; ++i) {
        const std::string cmid = through[p] + "-" + std::to_string(i);
        auto ack = publish_through(c, room, cmid, deadline);
        if (ack) acked[p][cmid] = ack->seq, ++acked_count;
        else failed[p].push_back(cmid + ": " + ack.error().message);
        if (!ack && Clock::now() > deadline) break;
      }
    });
  while (acked_count < 150) std::this_thread::yield();
  cluster.kill("a");  // under load: no clean stop, no goodbye
  for (auto& t : publishers) t.join();
  if (!failed[0].empty() || !failed[1].empty()) {
    auto printed = switchboard::testing::run_command(
        {"shards", "--keys", cluster.node("b").keys_dir(), "--connect", cluster.node("b").client_endpoint()});
    ADD_FAILURE() << "not every publish was acknowledged: " << failed[0].size() + failed[1].size()
                  << " failed, the first: " << (failed[0].empty() ? failed[1] : failed[0]).front()
                  << "\nswitchboard shards:\n" << printed.out << printed.err;
  }
  std::map<std::string, std::uint64_t> all = acked[0];
  all.insert(acked[1].begin(), acked[1].end());
  ASSERT_EQ(all.size(), 2u * kEach);

  auto second = primary_of_s1(on_b, "a");
  ASSERT_TRUE(second) << "a replica took over";
  EXPECT_NE(second->first, "a");
  EXPECT_GE(second->second, 2u) << "in a later term";
  const auto history = whole_history(on_b, room);
  expect_history_holds(history, all, "the new primary");

  // The subscriber on c saw every message, in order, once: the feed followed the new
  // primary, and what it missed meanwhile was read back from history.
  auto got = switchboard::testing::receive(subscriber, history.size(), true);
  ASSERT_EQ(got.size(), history.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, i + 1);

  // The old primary comes back as a replica and catches up. What it stored that no
  // majority had (never acknowledged) is not in its history any more.
  cluster.start("a");
  ASSERT_TRUE(caught_up(on_b, "a")) << "a caught up with the new primary";
  auto third = primary_of_s1(on_b);
  ASSERT_TRUE(third);
  EXPECT_EQ(*third, *second) << "a's return changed nothing: no election";
  // Its copy is the shard's: with the new primary gone, a serves the same history.
  cluster.kill(second->first);
  client::Client on_a(cluster.client_of("a"));
  const auto rejoined = whole_history(on_a, room);
  expect_history_holds(rejoined, all, "the old primary, rejoined");
  EXPECT_EQ(rejoined.size(), history.size());
}

TEST(Failover, AReplicaCutOffOnItsOwnIsNotPromotedAndTheOthersCarryOn) {
  Cluster cluster(ClusterSettings{
      .proxied_links = true, .shard_lines = {{"s1", "replicas = [\"b\", \"c\"]\n"}}, .log_files = true});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "minority");
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
  EXPECT_EQ(publish_n(on_a, room, 50, "before"), one_to(50));

  // c hears nothing from a or b, and they nothing from it: c sees its primary gone,
  // but b still sees a, so no majority would vote for c.
  cluster.set_link("c", "a", switchboard::testing::LinkProxy::Mode::hold);
  cluster.set_link("c", "b", switchboard::testing::LinkProxy::Mode::hold);
  std::map<std::string, std::uint64_t> during;
  for (int i = 0; i < 100; ++i) {  // a acknowledges with b alone meanwhile
    const std::string cmid = "during-" + std::to_string(i);
    auto ack = while_unavailable([&] { return on_a.publish(room, "ann", "message " + cmid, cmid); });
    ASSERT_TRUE(ack) << ack.error().message;
    during[cmid] = ack->seq;
  }
  // c stood, and found no majority: b still hears from a. (A pre-vote: c's term stays.)
  EXPECT_TRUE(cluster.wait_for_log("c", "no majority for node c in shard s1 (term 1)"));
  EXPECT_EQ(during.size(), 100u);
  cluster.set_link("c", "a", switchboard::testing::LinkProxy::Mode::pass);
  cluster.set_link("c", "b", switchboard::testing::LinkProxy::Mode::pass);
  ASSERT_TRUE(caught_up(on_a, "c"));
  auto primary = primary_of_s1(on_a);
  ASSERT_TRUE(primary);
  EXPECT_EQ(*primary, (std::pair<std::string, std::uint64_t>{"a", 1})) << "no promotion, and not even a new term";
  cluster.kill("a");
  cluster.kill("b");
  client::Client on_c(cluster.client_of("c"));
  EXPECT_EQ(seqs_of(on_c, room), one_to(150)) << "c has all a acknowledged while it was cut off";
}

// ---- catching up from a copy of the store -----------------------------------------------

namespace {

/// Every message `acked` (seq -> client message id) is in `history` at its seq, and
/// nothing else is.
void expect_same_messages(const std::vector<transport::RoomMessage>& history,
                          const std::vector<std::string>& cmids, const std::string& where) {
  ASSERT_EQ(history.size(), cmids.size()) << where;
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].seq, i + 1) << where;
    EXPECT_EQ(history[i].client_msg_id, cmids[i]) << where << ": seq " << i + 1;
    EXPECT_EQ(history[i].body, "message " + cmids[i]) << where << ": seq " << i + 1;
  }
}

std::vector<std::string> cmids(const std::string& tag, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(tag + "-" + std::to_string(i));
  return out;
}

}  // namespace

TEST(Replication, AReplicaAddedToAShardThatHasHistoryStartsFromACopyOfThePrimarysStore) {
  Cluster cluster;  // s1 on a, no replicas yet
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "history");
  {
    client::Client on_a(cluster.client_of("a"));
    ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
    ASSERT_TRUE(on_a.join(room, "bob"));
    EXPECT_EQ(publish_n(on_a, room, 200, "before"), one_to(200));
  }
  for (const auto& name : cluster.names()) cluster.kill(name);
  // The operator gives s1 a replica, b, and restarts the nodes.
  {
    std::ifstream in(cluster.file());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string s1 = "name = \"s1\"\nowner = \"a\"\n";
    const auto at = text.find(s1);
    ASSERT_NE(at, std::string::npos) << text;
    text.insert(at + s1.size(), "replicas = [\"b\"]\nack = \"replicated\"\n");
    std::ofstream(cluster.file()) << text;
  }
  cluster.start_all();
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(caught_up(on_a, "b")) << "b installed a copy of a's store, and has s1's log from there";
  std::vector<std::uint64_t> after = publish_n(on_a, room, 50, "after");
  ASSERT_EQ(after.size(), 50u);
  EXPECT_EQ(after.front(), 201u);
  EXPECT_EQ(after.back(), 250u);

  cluster.kill("a");  // b serves s1's reads from its own store now
  client::Client on_b(cluster.client_of("b"));
  std::vector<std::string> all = cmids("before", 200);
  for (auto& cmid : cmids("after", 50)) all.push_back(cmid);
  expect_same_messages(whole_history(on_b, room), all, "b, which had none of the room before");
  auto members = while_unavailable([&] { return on_b.members(room); });
  ASSERT_TRUE(members) << members.error().message;
  EXPECT_EQ(*members, (std::vector<std::string>{"ann", "bob"}));
}

TEST(Replication, AReplicaThatLostItsDataIsSentACopyOfTheStoreAndCatchesUp) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\", \"c\"]\n"}}, .log_files = true});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "lost");
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
  // One publish at a time: one log entry each, so the log is trimmed past its start
  // (every 1024 entries every member has).
  EXPECT_EQ(publish_n(on_a, room, 1100, "m"), one_to(1100));
  ASSERT_TRUE(caught_up(on_a, "c"));

  cluster.kill("c");
  for (const char* file : {"data.mdb", "lock.mdb"})
    std::filesystem::remove(std::filesystem::path(cluster.node("c").data_dir()) / file);  // its keys stay
  cluster.start("c");
  ASSERT_TRUE(cluster.wait_for_log("a", "replica c of shard s1 is behind what this node's log keeps"))
      << "the log's start is trimmed: c cannot be brought up to date from it";
  ASSERT_TRUE(caught_up(on_a, "c")) << "c installed a copy and took the log from there";
  EXPECT_TRUE(cluster.wait_for_log("c", "installed the copy of shard s1"));
  const std::vector<std::uint64_t> seqs = publish_n(on_a, room, 20, "n");
  ASSERT_EQ(seqs.size(), 20u);
  EXPECT_EQ(seqs.front(), 1101u);
  EXPECT_EQ(seqs.back(), 1120u);
  ASSERT_TRUE(caught_up(on_a, "c"));

  cluster.kill("a");
  cluster.kill("b");  // c alone: it serves s1's reads from its own store
  client::Client on_c(cluster.client_of("c"));
  std::vector<std::string> all = cmids("m", 1100);
  for (auto& cmid : cmids("n", 20)) all.push_back(cmid);
  expect_same_messages(whole_history(on_c, room), all, "c, from the copy and the log after it");
}

TEST(Replication, RetentionTrimsTheReplicaExactlyAsThePrimary) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\"]\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "kept");
  client::Client on_a(cluster.client_of("a"));
  ASSERT_TRUE(while_unavailable([&] { return on_a.create_room(room, "ann"); }));
  auto set = on_a.set_retention({room, std::nullopt, 100});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(publish_n(on_a, room, 300, "r"), one_to(300));
  // The primary trims in the background; its trims go through the shard's log.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  std::uint64_t first = 0;
  while (first != 201 && Clock::now() < deadline) {
    auto r = on_a.set_retention({room});
    ASSERT_TRUE(r) << r.error().message;
    first = r->first_seq;
    if (first != 201) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling what the node reports
  }
  ASSERT_EQ(first, 201u);
  // A write acknowledged after the trim (a join: on the replica before its ack, and
  // after the trim in the log) shows the trim reached the replica.
  ASSERT_TRUE(on_a.join(room, "bob"));

  cluster.kill("a");
  client::Client on_b(cluster.client_of("b"));
  auto page = while_unavailable([&] { return on_b.history(room, {1000, std::nullopt, 0}); });
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->first_seq, 201u) << "the replica starts where the primary does";
  ASSERT_EQ(page->messages.size(), 100u);
  EXPECT_EQ(page->messages.front().seq, 201u);
  EXPECT_EQ(page->messages.back().seq, 300u);
}

TEST(Failover, AClientGivenEveryNodeMovesOnWhenItsNodeDiesAndLosesNothingNorGetsAnythingTwice) {
  // One keypair every node admits, and each node's public key: a client of the topology.
  const auto own = transport::generate_curve_keypair();
  Cluster cluster(ClusterSettings{.extra = "[security]\nclient_keys = [\"" + own.public_key + "\"]\n",
                                  .shard_lines = {{"s1", "replicas = [\"b\", \"c\"]\n"}}});
  cluster.start_all();
  client::ClientOptions options = cluster.client_of("a");
  options.endpoints.clear();
  for (const char* n : {"a", "b", "c"}) {
    options.endpoints.push_back(cluster.node(n).client_endpoint());
    auto key = transport::load_curve_public(std::filesystem::path(cluster.node(n).keys_dir()) / "node.key.pub");
    ASSERT_TRUE(key) << key.error().message;
    options.node_keys[options.endpoints.back()] = *key;
  }
  options.curve = transport::CurveClient{own, options.node_keys.at(options.endpoints.front())};
  const std::string room = cluster.room_owned_by("a", "moving");
  client::Client publisher(options), subscriber(options);  // both on a, the room's primary
  ASSERT_TRUE(while_unavailable([&] { return publisher.create_room(room, "ann"); }));
  ASSERT_TRUE(while_unavailable([&] { return subscriber.subscribe(room); }));
  EXPECT_EQ(publisher.endpoint(), options.endpoints[0]);

  constexpr int kCount = 300;
  std::map<std::string, std::uint64_t> acked;
  std::vector<std::string> failed;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  std::thread publishing([&] {
    for (int i = 0; i < kCount; ++i) {
      const std::string cmid = "m-" + std::to_string(i);
      auto ack = publish_through(publisher, room, cmid, deadline);
      if (ack) acked[cmid] = ack->seq;
      else failed.push_back(cmid + ": " + ack.error().message);
    }
  });
  // The subscriber reads while a dies under it: its node is gone, it moves to another.
  std::vector<transport::RoomMessage> got;
  bool killed = false;
  while (got.size() < kCount && Clock::now() < deadline) {
    auto m = subscriber.next(std::chrono::milliseconds(100));
    if (!m) continue;  // a failed repair (the node it moved to still electing): tried again
    if (*m) got.push_back(std::move(**m));
    if (!killed && got.size() >= 100) {
      cluster.kill("a");  // no clean stop, no goodbye
      killed = true;
    }
  }
  publishing.join();
  EXPECT_TRUE(failed.empty()) << failed.size() << " publishes failed, the first: " << failed.front();
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(kCount));
  EXPECT_GE(publisher.moves(), 1u) << "the publisher left a";
  EXPECT_GE(subscriber.moves(), 1u) << "the subscriber left a";
  EXPECT_NE(subscriber.endpoint(), options.endpoints[0]);
  const auto history = whole_history(publisher, room);
  expect_history_holds(history, acked, "after the failover");
  // Every message once, in seq order, across the move.
  ASSERT_EQ(got.size(), history.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, i + 1);
    EXPECT_EQ(got[i].client_msg_id, history[i].client_msg_id);
  }
}
