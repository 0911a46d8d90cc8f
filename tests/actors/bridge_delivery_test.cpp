// RoomDelivery, the bridge's ordered, exactly-once fan-out: no sockets, a simulated clock.
#include <gtest/gtest.h>

#include <map>

#include "switchboard/actors/bridge_delivery.hpp"

using namespace switchboard::actors;
using namespace std::chrono_literals;

namespace {

const auto t0 = RoomDelivery::Clock::time_point{} + 1h;

SeqFrame msg(std::uint64_t seq) {
  return {seq, std::make_shared<const OutFrame>(OutFrame{std::to_string(seq), {}})};
}

std::vector<SeqFrame> page(std::uint64_t from, std::uint64_t to) {
  std::vector<SeqFrame> out;
  for (auto s = from; s <= to; ++s) out.push_back(msg(s));
  return out;
}

/// What each connection got, in order.
struct Inboxes {
  std::map<ConnId, std::vector<std::uint64_t>> got;
  void take(DeliveryActions& a) {
    for (const auto& d : a.deliver)
      for (ConnId c : d.to) got[c].push_back(std::stoull(d.frame->text));
    a.deliver.clear();
  }
};

std::vector<std::uint64_t> seqs(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> out;
  for (auto s = from; s <= to; ++s) out.push_back(s);
  return out;
}

}  // namespace

TEST(RoomDelivery, LiveMessagesReachEveryFollowerInOrderOnce) {
  RoomDelivery d;
  DeliveryActions a;
  Inboxes in;
  EXPECT_TRUE(d.expect("r"));
  EXPECT_FALSE(d.expect("r"));
  d.follow(1, "r", 0, 0);
  d.follow(2, "r", 0, 0);
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty());
  for (std::uint64_t s : {1, 2, 2, 3, 1}) d.on_live("r", msg(s), t0, a);  // repeats are dropped
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty());
  in.take(a);
  EXPECT_EQ(in.got[1], seqs(1, 3));
  EXPECT_EQ(in.got[2], seqs(1, 3));
  EXPECT_EQ(a.deliver.size(), 0u);
}

TEST(RoomDelivery, AGapIsFetchedOnceForEveryoneAndFilledInOrder) {
  RoomDelivery d;
  DeliveryActions a;
  Inboxes in;
  d.expect("r");
  d.expect("r");
  d.follow(1, "r", 0, 0);
  d.follow(2, "r", 0, 0);
  d.on_live("r", msg(1), t0, a);
  d.on_live("r", msg(4), t0, a);  // 2 and 3 were dropped by the PUB
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u) << "one fetch serves both followers";
  EXPECT_EQ(a.fetch[0].after, 1u);
  EXPECT_EQ(a.fetch[0].limit, 3u);
  d.on_live("r", msg(5), t0, a);  // arrives during the repair
  a.fetch.clear();
  d.on_history("r", 1, page(2, 5), false, a);
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty());
  d.on_live("r", msg(6), t0, a);
  in.take(a);
  EXPECT_EQ(in.got[1], seqs(1, 6));
  EXPECT_EQ(in.got[2], seqs(1, 6));
}

TEST(RoomDelivery, ResumingFromALastSeqCatchesUpInPagesThenGoesLive) {
  RoomDelivery d(10);
  DeliveryActions a;
  Inboxes in;
  d.expect("r");
  d.follow(7, "r", 5, 25);  // saw up to 5; the room is at 25
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  EXPECT_EQ(a.fetch[0].after, 5u);
  EXPECT_EQ(a.fetch[0].limit, 10u);
  a.fetch.clear();
  d.on_live("r", msg(26), t0, a);  // live while catching up: not delivered out of order
  in.take(a);
  EXPECT_TRUE(in.got[7].empty());
  d.on_history("r", 5, page(6, 15), true, a);
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  EXPECT_EQ(a.fetch[0].after, 15u);
  a.fetch.clear();
  d.on_history("r", 15, page(16, 25), false, a);  // read before 26 was stored
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u) << "26 was seen live, so it is fetched";
  EXPECT_EQ(a.fetch[0].after, 25u);
  a.fetch.clear();
  d.on_history("r", 25, page(26, 26), false, a);
  d.on_live("r", msg(27), t0, a);
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty());
  in.take(a);
  EXPECT_EQ(in.got[7], seqs(6, 27));
  EXPECT_EQ(d.next(7, "r"), 28u);
}

TEST(RoomDelivery, TheTailOfABurstIsFoundWhenTheRoomIsQuiet) {
  RoomDelivery d(500, 250ms);
  DeliveryActions a;
  Inboxes in;
  d.expect("r");
  d.follow(1, "r", 0, 0);
  d.on_live("r", msg(1), t0, a);  // 2 and 3 were dropped, and nothing came after them
  d.tick(t0 + 100ms, a);
  EXPECT_TRUE(a.last_seq.empty()) << "not quiet yet";
  d.tick(t0 + 300ms, a);
  ASSERT_EQ(a.last_seq, std::vector<std::string>{"r"});
  a.last_seq.clear();
  d.tick(t0 + 600ms, a);
  EXPECT_TRUE(a.last_seq.empty()) << "asked once per quiet spell";
  d.on_last_seq("r", 3);
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  d.on_history("r", 1, page(2, 3), false, a);
  in.take(a);
  EXPECT_EQ(in.got[1], seqs(1, 3));
}

TEST(RoomDelivery, AFailedFetchIsAskedAgainOnTheNextTick) {
  RoomDelivery d;
  DeliveryActions a;
  Inboxes in;
  d.expect("r");
  d.follow(1, "r", 0, 2);
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  a.fetch.clear();
  d.on_fetch_failed("r", 0);
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty());
  d.tick(t0, a);
  ASSERT_EQ(a.last_seq.size(), 1u);
  d.on_last_seq("r", 2);
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  d.on_history("r", 0, page(1, 2), false, a);
  in.take(a);
  EXPECT_EQ(in.got[1], seqs(1, 2));
}

TEST(RoomDelivery, CatchUpWaitsForTheConnectionsBudget) {
  std::map<ConnId, std::size_t> budget = {{1, 0}};
  RoomDelivery d(500, 250ms, [&](ConnId c) { return budget[c]; });
  DeliveryActions a;
  Inboxes in;
  d.expect("r");
  d.follow(1, "r", 0, 100);
  d.plan(a);
  EXPECT_TRUE(a.fetch.empty()) << "its queue is full";
  budget[1] = 30;
  d.resume("r");
  d.plan(a);
  ASSERT_EQ(a.fetch.size(), 1u);
  EXPECT_EQ(a.fetch[0].limit, 30u) << "no more than it can queue";
  d.on_history("r", 0, page(1, 30), true, a);
  in.take(a);
  EXPECT_EQ(in.got[1], seqs(1, 30));
}

TEST(RoomDelivery, RoomsWithNobodyLeftAreForgotten) {
  RoomDelivery d;
  DeliveryActions a;
  d.expect("r");
  d.expect("s");
  EXPECT_TRUE(d.cancel("s"));
  d.follow(1, "r", 0, 0);
  EXPECT_FALSE(d.unfollow(2, "r"));
  EXPECT_TRUE(d.unfollow(1, "r"));
  EXPECT_EQ(d.rooms(), 0u);
  d.on_live("r", msg(1), t0, a);  // a late message of a room nobody follows
  EXPECT_TRUE(a.deliver.empty());
}
