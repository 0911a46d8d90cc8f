// Replicated shards (docs/REPLICATION.md), with real node processes on loopback: what
// a primary acknowledged with ack = "replicated" is on its replica, which serves it
// while the primary is down; a primary without enough replicas refuses writes at
// once; a replica that was away catches up.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "client_helpers.hpp"
#include "cluster_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::Cluster;
using switchboard::testing::ClusterSettings;
using switchboard::testing::while_unavailable;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::uint64_t> seqs_of(client::Client& c, const std::string& room) {
  std::vector<std::uint64_t> out;
  std::uint64_t after = 0;
  for (;;) {
    auto page = while_unavailable([&] { return c.history(room, client::HistoryQuery{1000, std::nullopt, after}); });
    EXPECT_TRUE(page) << page.error().message;
    if (!page) return out;
    for (const auto& m : page->messages) out.push_back(m.seq);
    if (!page->more || page->messages.empty()) return out;
    after = page->messages.back().seq;
  }
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

  cluster.kill("a");  // the primary: no clean stop, no goodbye
  client::Client on_b(cluster.client_of("b"));
  EXPECT_EQ(seqs_of(on_b, room), one_to(300)) << "every acked message, from the replica";
  auto last = while_unavailable([&] { return on_b.last_seq(room); });
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(*last, 300u);
  auto members = while_unavailable([&] { return on_b.members(room); });
  ASSERT_TRUE(members) << members.error().message;
  EXPECT_EQ(*members, (std::vector<std::string>{"ann", "bob"}));
  auto publish = on_b.publish(room, "ann", "while the primary is down");
  ASSERT_FALSE(publish) << "a replica does not take writes (no failover yet)";
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
