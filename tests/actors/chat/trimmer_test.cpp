// Trimmer: the steps retention takes for a room, one at a time.
#include "switchboard/actors/chat/trimmer.hpp"

#include <gtest/gtest.h>

using switchboard::actors::Trimmer;
using Kind = Trimmer::Step::Kind;

TEST(Trimmer, ARoomOverItsCountIsTrimmedStepByStepOneStepAtATime) {
  Trimmer t(1000);
  const Trimmer::Room room{1, 5000, 0, 1500, false};
  auto step = t.next("r", room, 10'000);
  ASSERT_EQ(step.kind, Kind::trim);
  EXPECT_EQ(step.before, 3501u) << "keeps the newest 1500";
  EXPECT_EQ(t.next("r", room, 10'000).kind, Kind::none) << "one step at a time";
  t.done("r");
  auto again = t.next("r", Trimmer::Room{3501, 5000, 0, 1500, false}, 10'000);
  EXPECT_EQ(again.kind, Kind::none) << "within its bound now";
  EXPECT_EQ(t.next("r", Trimmer::Room{1, 5000, 0, 0, false}, 10'000).kind, Kind::none) << "no bound";
  EXPECT_EQ(t.next("h", Trimmer::Room{1, 5000, 0, 10, true}, 10'000).kind, Kind::none) << "a legal hold";
}

TEST(Trimmer, ByAgeItScansThenTrimsAndLooksAgainWhenTheOldestKeptTurnsOld) {
  Trimmer t(1000);
  const std::uint64_t hour = 3'600'000, now = 100 * hour;
  const Trimmer::Room room{1, 5000, hour, 0, false};
  auto scan = t.next("r", room, now);
  ASSERT_EQ(scan.kind, Kind::scan);
  EXPECT_EQ(scan.from, 1u);
  EXPECT_EQ(scan.limit, 1000u);
  EXPECT_EQ(scan.cutoff_ms, now - hour);
  EXPECT_EQ(t.next("r", room, now).kind, Kind::none) << "while the scan is out";
  t.scanned("r", 1001, 0, hour, now);  // all thousand too old
  auto trim = t.next("r", room, now);
  ASSERT_EQ(trim.kind, Kind::trim);
  EXPECT_EQ(trim.before, 1001u);
  t.done("r");
  const Trimmer::Room trimmed{1001, 5000, hour, 0, false};
  auto rescan = t.next("r", trimmed, now);
  ASSERT_EQ(rescan.kind, Kind::scan) << "straight on: more may be too old";
  EXPECT_EQ(rescan.from, 1001u);
  t.scanned("r", 1200, now - hour + 60'000, hour, now);  // 1200 turns old in a minute
  ASSERT_EQ(t.next("r", trimmed, now).kind, Kind::trim);
  t.done("r");
  const Trimmer::Room kept{1200, 5000, hour, 0, false};
  EXPECT_EQ(t.next("r", kept, now + 59'000).kind, Kind::none) << "nothing turns old before then";
  EXPECT_EQ(t.next("r", kept, now + 60'000).kind, Kind::scan);
}
