// The retry window's table (actors/chat/dedup_table.hpp): exact keys, forgetting from
// the oldest end, and what an entry costs.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>

#include "switchboard/actors/chat/dedup_table.hpp"

using switchboard::actors::DedupTable;

namespace {
std::string hex_id(std::uint64_t n) {  // what the client library makes: 32 lowercase hex digits
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", 0x1234'5678'9abc'def0ULL, static_cast<unsigned long long>(n));
  return text;
}
}  // namespace

TEST(DedupTable, FindsAPublishOnlyByItsWholeKey) {
  DedupTable t;
  const std::string id = hex_id(1), long_id(60, 'z');
  t.insert({1, 2, id}, 41, 1000);
  t.insert({1, 2, "short"}, 42, 1001);
  t.insert({1, 2, long_id}, 43, 1002);
  t.insert({1, 2, "0123456789ABCDEF0123456789ABCDEF"}, 44, 1003);  // hex, but not lowercase
  ASSERT_TRUE(t.find({1, 2, id}));
  EXPECT_EQ(t.find({1, 2, id})->seq, 41u);
  EXPECT_EQ(t.find({1, 2, id})->ts_ms, 1000u);
  EXPECT_EQ(t.find({1, 2, "short"})->seq, 42u);
  EXPECT_EQ(t.find({1, 2, long_id})->seq, 43u);
  EXPECT_EQ(t.find({1, 2, "0123456789ABCDEF0123456789ABCDEF"})->seq, 44u);
  EXPECT_FALSE(t.find({1, 2, "0123456789abcdef0123456789abcdef"})) << "another id: uppercase is not lowercase";
  EXPECT_FALSE(t.find({1, 3, id})) << "another user";
  EXPECT_FALSE(t.find({2, 2, id})) << "another room";
  EXPECT_FALSE(t.find({1, 2, hex_id(2)}));
  EXPECT_FALSE(t.find({1, 2, std::string(59, 'z')}));
  EXPECT_FALSE(t.find({1, 2, "shor"}));
  EXPECT_FALSE(t.find({1, 2, ""}));
  EXPECT_EQ(t.size(), 4u);
}

TEST(DedupTable, ForgetsTheOldestByTimeAndByCount) {
  DedupTable t;
  for (std::uint64_t i = 1; i <= 100; ++i) t.insert({7, 1, hex_id(i)}, i, 10'000 + i);
  t.expire(10'051, 1'000'000);  // older than 10'051 ms: the first 50
  EXPECT_EQ(t.size(), 50u);
  EXPECT_FALSE(t.find({7, 1, hex_id(50)}));
  EXPECT_TRUE(t.find({7, 1, hex_id(51)}));
  t.expire(0, 10);  // at most 10: the newest 10
  EXPECT_EQ(t.size(), 10u);
  EXPECT_FALSE(t.find({7, 1, hex_id(90)}));
  for (std::uint64_t i = 91; i <= 100; ++i) EXPECT_EQ(t.find({7, 1, hex_id(i)})->seq, i);
}

TEST(DedupTable, ErasesOneKeyOnlyWithItsSeqAndWholeRooms) {
  DedupTable t;
  t.insert({1, 1, "a"}, 1, 5);
  t.insert({2, 1, "a"}, 1, 5);
  t.insert({3, 1, "a"}, 1, 5);
  EXPECT_FALSE(t.erase({1, 1, "a"}, 2)) << "remembered with another seq: kept";
  EXPECT_TRUE(t.erase({1, 1, "a"}, 1));
  EXPECT_FALSE(t.find({1, 1, "a"}));
  t.erase_rooms([](std::uint32_t room) { return room == 2; });
  EXPECT_FALSE(t.find({2, 1, "a"}));
  EXPECT_TRUE(t.find({3, 1, "a"}));
  EXPECT_EQ(t.size(), 1u);
  t.insert({3, 1, "a"}, 9, 6);  // remembered again: the newer one
  EXPECT_EQ(t.find({3, 1, "a"})->seq, 9u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(DedupTable, APublishOnItsWayIsFoundByItsRetriesAndSettledWithItsSeq) {
  DedupTable t;
  auto first = t.claim({1, 2, hex_id(1)}, 1000);
  ASSERT_FALSE(first.found) << "new: claimed";
  auto retry = t.claim({1, 2, hex_id(1)}, 1001);
  ASSERT_TRUE(retry.found) << "a retry while it is on its way finds it";
  EXPECT_TRUE(retry.found->on_its_way);
  EXPECT_EQ(retry.claim, first.claim) << "and is told which publish it waits on";
  auto other = t.claim({1, 2, hex_id(2)}, 1002);
  EXPECT_FALSE(other.found);
  EXPECT_NE(other.claim, first.claim);
  // Grown past its first ring while both are on their way: the claims still hold.
  for (std::uint64_t i = 3; i < 100; ++i) t.insert({1, 2, hex_id(i)}, i, 1003);
  t.settle(first.claim, 77, 1005);
  auto seen = t.find({1, 2, hex_id(1)});
  ASSERT_TRUE(seen);
  EXPECT_FALSE(seen->on_its_way);
  EXPECT_EQ(seen->seq, 77u);
  EXPECT_EQ(seen->ts_ms, 1005u);
  auto again = t.claim({1, 2, hex_id(1)}, 1006);
  ASSERT_TRUE(again.found);
  EXPECT_EQ(again.found->seq, 77u) << "a retry once it is stored gets its seq";
  t.drop(other.claim);
  EXPECT_FALSE(t.find({1, 2, hex_id(2)})) << "one that will not be stored is forgotten: a retry stores it";
  EXPECT_FALSE(t.claim({1, 2, hex_id(2)}, 1007).found);
}

TEST(DedupTable, APublishOnItsWayIsNeitherForgottenNorReplaced) {
  DedupTable t;
  auto claimed = t.claim({5, 1, "on-its-way"}, 100);
  for (std::uint64_t i = 1; i <= 20; ++i) t.insert({5, 1, hex_id(i)}, i, 100 + i);
  t.expire(1'000, 0);  // everything is old and the window holds none: but it is on its way
  auto seen = t.find({5, 1, "on-its-way"});
  ASSERT_TRUE(seen);
  EXPECT_TRUE(seen->on_its_way);
  EXPECT_TRUE(t.find({5, 1, hex_id(1)})) << "nor what came after it (forgotten from the oldest end)";
  t.insert({5, 1, "on-its-way"}, 50, 200);  // a replicated copy, say: its claim decides
  EXPECT_TRUE(t.find({5, 1, "on-its-way"})->on_its_way);
  EXPECT_FALSE(t.erase({5, 1, "on-its-way"}, 0));
  t.erase_rooms([](std::uint32_t) { return true; });
  EXPECT_TRUE(t.find({5, 1, "on-its-way"}));
  t.settle(claimed.claim, 9, 300);
  EXPECT_EQ(t.find({5, 1, "on-its-way"})->seq, 9u);
  t.expire(1'000, 0);  // settled: forgotten as any other
  EXPECT_EQ(t.size(), 0u);
}

TEST(DedupTable, AgreesWithAPlainMapThroughManyInsertsExpiriesAndErasures) {
  DedupTable t;
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::string>, std::uint64_t> model;
  std::deque<std::tuple<std::uint32_t, std::uint32_t, std::string>> order;
  std::mt19937_64 random(7);
  std::uint64_t now = 1'700'000'000'000;
  for (std::uint64_t i = 1; i <= 200'000; ++i) {
    const auto room = static_cast<std::uint32_t>(random() % 50), user = static_cast<std::uint32_t>(random() % 20);
    std::string id = random() % 4 == 0 ? std::string(20 + random() % 40, static_cast<char>('a' + random() % 26))
                                       : hex_id(random() % 100'000);
    auto key = std::make_tuple(room, user, id);
    if (model.count(key)) std::erase(order, key);
    model[key] = i;
    order.push_back(key);
    t.insert({room, user, id}, i, now++);
    if (i % 1000 == 0) {  // keep the newest 30'000
      t.expire(0, 30'000);
      while (order.size() > 30'000) {
        model.erase(order.front());
        order.pop_front();
      }
      ASSERT_EQ(t.size(), model.size());
    }
  }
  for (const auto& [key, seq] : model) {
    auto found = t.find({std::get<0>(key), std::get<1>(key), std::get<2>(key)});
    ASSERT_TRUE(found);
    EXPECT_EQ(found->seq, seq);
  }
  EXPECT_FALSE(t.find({99, 0, hex_id(1)}));
}

TEST(DedupTable, AMillionRememberedPublishesTakeAbout46BytesEach) {
  DedupTable t;
  for (std::uint64_t i = 1; i <= 1'000'000; ++i) t.insert({static_cast<std::uint32_t>(i % 100), static_cast<std::uint32_t>(i % 16), hex_id(i)}, i, 1'700'000'000'000 + i);
  const double per_entry = static_cast<double>(t.memory_bytes()) / static_cast<double>(t.size());
  EXPECT_LE(per_entry, 48.0);
  EXPECT_TRUE(t.find({77, 777'777 % 16, hex_id(777'777)}));
}
