// Rendezvous placement of rooms on shards.
#include <gtest/gtest.h>

#include <map>

#include "switchboard/common/event_rooms.hpp"
#include "switchboard/router/placement.hpp"

using namespace switchboard::router;

namespace {
std::vector<ShardConfig> shards(int n) {
  std::vector<ShardConfig> out;
  for (int i = 1; i <= n; ++i) out.push_back({"s" + std::to_string(i), "node-" + std::to_string(i)});
  return out;
}
std::string room(int i) { return "room-" + std::to_string(i); }
}  // namespace

TEST(RoomPlacement, EveryNodeComputesTheSameOwnerWhateverTheShardOrder) {
  auto forward = shards(5);
  auto backward = forward;
  std::reverse(backward.begin(), backward.end());
  RoomPlacement a(forward), b(backward);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(a.owner_of(room(i)).name, b.owner_of(room(i)).name);
}

TEST(RoomPlacement, ARoomsEventsLogIsOnTheRoomsShard) {
  RoomPlacement p(shards(5));
  std::map<std::string, int> logs;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(p.owner_of(switchboard::events_room(room(i))).name, p.owner_of(room(i)).name);
    ++logs[p.owner_of(switchboard::events_room(room(i))).name];
  }
  EXPECT_EQ(logs.size(), 5u) << "logs spread as their rooms do";
}

TEST(RoomPlacement, SpreadsRoomsEvenly) {
  RoomPlacement p(shards(3));
  std::map<std::string, int> count;
  for (int i = 0; i < 10'000; ++i) ++count[p.owner_of(room(i)).name];
  ASSERT_EQ(count.size(), 3u);
  for (auto& [shard, n] : count) {
    EXPECT_GT(n, 2900) << shard;  // 3333 expected; SipHash keeps it within a few percent
    EXPECT_LT(n, 3800) << shard;
  }
}

TEST(RoomPlacement, AddingAFourthShardMovesAboutAQuarterOfTheRoomsAllToIt) {
  RoomPlacement three(shards(3)), four(shards(4));
  int moved = 0;
  for (int i = 0; i < 10'000; ++i) {
    const auto& before = three.owner_of(room(i));
    const auto& after = four.owner_of(room(i));
    if (before.name != after.name) {
      ++moved;
      EXPECT_EQ(after.name, "s4") << room(i) << " moved between old shards";
    }
  }
  EXPECT_GT(moved, 2000);  // 1/4 of 10 000 = 2500
  EXPECT_LT(moved, 3000);
}

TEST(RoomPlacement, WeightsAreStableAcrossBuilds) {
  // Placement must not change with a compiler, a library or a platform, or rooms would
  // move on upgrade. The weight is SipHash-2-4, zero key, of "shard\0room", read
  // big-endian (docs/TOPOLOGY.md); these values were reproduced by an independent
  // SipHash-2-4 written from the reference algorithm, not by this code.
  EXPECT_EQ(RoomPlacement::weight("s1", "general"), 2260894500862897622ull);
  EXPECT_EQ(RoomPlacement::weight("s2", "general"), 5466469464943992950ull);
  EXPECT_NE(RoomPlacement::weight("s1", "ab"), RoomPlacement::weight("s1a", "b")) << "the NUL separates the parts";
}
