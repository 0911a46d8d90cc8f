// PeerHealth: heartbeats and a circuit breaker per node, as pure state with a
// simulated clock.
#include <gtest/gtest.h>

#include <algorithm>

#include "switchboard/router/peers.hpp"

using namespace switchboard::router;
using namespace std::chrono_literals;

namespace {

using Clock = PeerHealth::Clock;

PeerOptions options() {
  PeerOptions o;
  o.heartbeat = 1000ms;
  o.misses = 3;
  o.request_timeout = 2500ms;
  return o;
}

const Clock::time_point t0{};

}  // namespace

TEST(PeerHealth, EveryPeerStartsUp) {
  PeerHealth h({"b", "c"}, options(), t0);
  EXPECT_TRUE(h.up("b"));
  EXPECT_TRUE(h.up("c"));
  EXPECT_TRUE(h.known("b"));
  EXPECT_TRUE(h.known("c"));
  EXPECT_EQ(h.states(), (std::map<std::string, bool>{{"b", true}, {"c", true}}));
  EXPECT_TRUE(h.tick(t0).empty());
}

TEST(PeerHealth, KeepsItsOptions) {
  PeerHealth h({"b"}, options(), t0);
  EXPECT_EQ(h.options().heartbeat, 1000ms);
  EXPECT_EQ(h.options().misses, 3u);
  EXPECT_EQ(h.options().request_timeout, 2500ms);
}

TEST(PeerHealth, APeerSilentForMoreThanHeartbeatTimesMissesIsReportedDownExactlyOnce) {
  PeerHealth h({"b"}, options(), t0);
  for (auto t : {1000ms, 2000ms, 3000ms}) {
    EXPECT_TRUE(h.tick(t0 + t).empty()) << "down after " << t.count() << " ms of silence";
    EXPECT_TRUE(h.up("b"));
  }
  // Exactly heartbeat x misses is not yet more than it.
  EXPECT_TRUE(h.tick(t0 + 3000ms).empty());
  EXPECT_EQ(h.tick(t0 + 3001ms), (std::vector<std::string>{"b"}));
  EXPECT_FALSE(h.up("b"));
  EXPECT_EQ(h.states(), (std::map<std::string, bool>{{"b", false}}));
  // Reported once: later heartbeats do not report it again while it stays down.
  EXPECT_TRUE(h.tick(t0 + 4000ms).empty());
  EXPECT_TRUE(h.tick(t0 + 60s).empty());
  EXPECT_FALSE(h.up("b"));
}

TEST(PeerHealth, OnlyTheSilentPeerGoesDown) {
  PeerHealth h({"b", "c", "d"}, options(), t0);
  h.heard_from("c", t0 + 2500ms);
  h.heard_from("d", t0 + 3500ms);
  EXPECT_EQ(h.tick(t0 + 4000ms), (std::vector<std::string>{"b"}));
  EXPECT_EQ(h.states(), (std::map<std::string, bool>{{"b", false}, {"c", true}, {"d", true}}));
  EXPECT_EQ(h.tick(t0 + 5600ms), (std::vector<std::string>{"c"}));
  EXPECT_EQ(h.tick(t0 + 6600ms), (std::vector<std::string>{"d"}));
  EXPECT_EQ(h.states(), (std::map<std::string, bool>{{"b", false}, {"c", false}, {"d", false}}));
}

TEST(PeerHealth, SeveralPeersCanGoDownAtTheSameHeartbeat) {
  PeerHealth h({"c", "b"}, options(), t0);
  auto down = h.tick(t0 + 3500ms);
  std::sort(down.begin(), down.end());
  EXPECT_EQ(down, (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(h.tick(t0 + 4500ms).empty());
}

TEST(PeerHealth, HearingFromAPeerResetsItsSilence) {
  PeerHealth h({"b"}, options(), t0);
  EXPECT_FALSE(h.heard_from("b", t0 + 2500ms)) << "it was up: no breaker closed";
  EXPECT_TRUE(h.tick(t0 + 3500ms).empty()) << "silence counts from the last answer";
  EXPECT_TRUE(h.tick(t0 + 5500ms).empty());
  EXPECT_TRUE(h.up("b"));
  EXPECT_EQ(h.tick(t0 + 5501ms), (std::vector<std::string>{"b"}));
}

TEST(PeerHealth, HeardFromClosesTheBreakerOnceAndSilenceCountsAgainFromThen) {
  PeerHealth h({"b"}, options(), t0);
  ASSERT_EQ(h.tick(t0 + 4000ms), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(h.heard_from("b", t0 + 10s)) << "the first answer closes the breaker";
  EXPECT_TRUE(h.up("b"));
  EXPECT_FALSE(h.heard_from("b", t0 + 10s)) << "already closed";
  EXPECT_FALSE(h.heard_from("b", t0 + 11s));
  // Not straight down again at the next heartbeat: the silence starts at 11 s.
  EXPECT_TRUE(h.tick(t0 + 12s).empty());
  EXPECT_TRUE(h.tick(t0 + 14s).empty());
  EXPECT_TRUE(h.up("b"));
  // And it can go down again, reported once more.
  EXPECT_EQ(h.tick(t0 + 14001ms), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(h.tick(t0 + 15s).empty());
}

TEST(PeerHealth, UnreachableOpensTheBreakerAtOnce) {
  PeerHealth h({"b", "c"}, options(), t0);
  h.heard_from("b", t0 + 500ms);
  EXPECT_TRUE(h.unreachable("b")) << "opened";
  EXPECT_FALSE(h.up("b"));
  EXPECT_TRUE(h.up("c"));
  EXPECT_FALSE(h.unreachable("b")) << "already open";
  EXPECT_FALSE(h.up("b"));
  // The heartbeat does not report it down a second time.
  EXPECT_EQ(h.tick(t0 + 4000ms), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(h.tick(t0 + 10s).empty());
  EXPECT_FALSE(h.up("b"));
  // An answer closes it again.
  EXPECT_TRUE(h.heard_from("b", t0 + 10s));
  EXPECT_TRUE(h.up("b"));
  EXPECT_TRUE(h.unreachable("b")) << "and it can be opened again";
}

TEST(PeerHealth, UnreachableOfAPeerAlreadyDownByHeartbeatsOpensNothing) {
  PeerHealth h({"b"}, options(), t0);
  ASSERT_EQ(h.tick(t0 + 4000ms), (std::vector<std::string>{"b"}));
  EXPECT_FALSE(h.unreachable("b"));
  EXPECT_FALSE(h.up("b"));
}

TEST(PeerHealth, UnknownNamesAreNotPeers) {
  PeerHealth h({"b"}, options(), t0);
  EXPECT_FALSE(h.known("x"));
  EXPECT_FALSE(h.known(""));
  EXPECT_FALSE(h.known("B"));
  EXPECT_FALSE(h.up("x"));
  EXPECT_FALSE(h.heard_from("x", t0 + 1s));
  EXPECT_FALSE(h.unreachable("x"));
  EXPECT_EQ(h.states(), (std::map<std::string, bool>{{"b", true}})) << "no peer added by asking about it";
  EXPECT_EQ(h.tick(t0 + 4000ms), (std::vector<std::string>{"b"}));
  EXPECT_FALSE(h.known("x"));
}

TEST(PeerHealth, NoPeersNothingToReport) {
  PeerHealth h({}, options(), t0);
  EXPECT_TRUE(h.states().empty());
  EXPECT_TRUE(h.tick(t0 + 1h).empty());
}
