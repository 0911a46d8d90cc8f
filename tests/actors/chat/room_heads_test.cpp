// RoomHeads: what a node's heads events say, with a simulated clock.
#include <gtest/gtest.h>

#include <set>

#include "switchboard/actors/chat/room_heads.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace std::chrono_literals;

namespace {

const auto t0 = RoomHeads::Clock::time_point{} + 1h;

std::vector<transport::HeadsEvent> decoded(const std::vector<std::string>& frames) {
  std::vector<transport::HeadsEvent> out;
  transport::Limits limits;
  limits.max_array = 1u << 20;
  for (const auto& f : frames) {
    auto h = transport::decode_heads(f, limits);
    EXPECT_TRUE(h) << h.error().message;
    if (h) out.push_back(*h);
  }
  return out;
}

}  // namespace

TEST(RoomHeads, AnEventNamesEachRoomThatPublishedWithItsNewestSeq) {
  RoomHeads heads("node-a", 250ms, 1s);
  heads.note("r", 5);
  heads.note("r", 3);  // a batch's earlier seq, noted after: the newest stays
  heads.note("s", 1);
  auto events = decoded(heads.due(t0));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].node, "node-a");
  EXPECT_EQ(events[0].number, 1u);
  std::set<std::pair<std::string, std::uint64_t>> named;
  for (const auto& h : events[0].rooms) named.insert({h.room, h.seq});
  EXPECT_EQ(named, (std::set<std::pair<std::string, std::uint64_t>>{{"r", 5}, {"s", 1}}));
}

TEST(RoomHeads, AQuietNodeSendsAnEmptyEventOnlyAfterTheKeepalive) {
  RoomHeads heads("node-a", 250ms, 1s);
  heads.note("r", 1);
  ASSERT_EQ(heads.due(t0).size(), 1u);
  EXPECT_TRUE(heads.due(t0 + 250ms).empty()) << "nothing published: nothing to say yet";
  EXPECT_TRUE(heads.due(t0 + 750ms).empty());
  auto events = decoded(heads.due(t0 + 1s));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].number, 2u) << "numbered on, so a subscriber sees one missing";
  EXPECT_TRUE(events[0].rooms.empty());
}

TEST(RoomHeads, ManyRoomsGoInSeveralEventsNumberedInOrder) {
  RoomHeads heads("node-a", 250ms, 1s);
  const std::size_t rooms = RoomHeads::kRoomsPerEvent + 10;
  for (std::size_t i = 0; i < rooms; ++i) heads.note("room-" + std::to_string(i), i + 1);
  auto events = decoded(heads.due(t0));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].number, 1u);
  EXPECT_EQ(events[1].number, 2u);
  EXPECT_EQ(events[0].rooms.size() + events[1].rooms.size(), rooms);
  EXPECT_LE(events[0].rooms.size(), RoomHeads::kRoomsPerEvent);
}
