// The ZAP handler's decisions (actors/zap.hpp), without sockets: listed keys in, the
// rest out, client keys kept off node-to-node endpoints; and the refusal log budget.
#include <gtest/gtest.h>

#include "switchboard/actors/zap.hpp"
#include "switchboard/transport/curve.hpp"

using namespace switchboard::actors;

namespace {

struct Keys {
  std::string node = switchboard::transport::generate_curve_keypair().public_key;
  std::string client = switchboard::transport::generate_curve_keypair().public_key;
  std::string stranger = switchboard::transport::generate_curve_keypair().public_key;
  ZapPolicy policy() const {
    ZapPolicy p;
    p.admit(node, "node b", true);
    p.admit(client, "client");
    return p;
  }
};

}  // namespace

TEST(Zap, ListedKeysAreAdmittedWithWhoseTheyAre) {
  Keys k;
  auto client = zap_decide(k.policy(), zap_domain("chat", "clients"), "CURVE", k.client);
  EXPECT_TRUE(client.allow) << client.reason;
  EXPECT_EQ(client.user_id, "client");
  auto node = zap_decide(k.policy(), zap_domain("chat", "publish"), "CURVE", k.node);
  EXPECT_TRUE(node.allow);
  EXPECT_EQ(node.user_id, "node b");
}

TEST(Zap, AnUnlistedKeyIsRefusedEverywhere) {
  Keys k;
  for (const char* kind : {"clients", "publish", "peers"}) {
    auto v = zap_decide(k.policy(), zap_domain("chat", kind), "CURVE", k.stranger);
    EXPECT_FALSE(v.allow) << kind;
    EXPECT_EQ(v.reason, "the key is not listed in the topology");
  }
}

TEST(Zap, OnlyNodeKeysMayUseNodeToNodeEndpoints) {
  Keys k;
  EXPECT_TRUE(zap_decide(k.policy(), zap_domain("chat", "peers"), "CURVE", k.node).allow);
  EXPECT_TRUE(zap_decide(k.policy(), zap_domain("presence", "peers"), "CURVE", k.node).allow);
  auto client = zap_decide(k.policy(), zap_domain("chat", "peers"), "CURVE", k.client);
  EXPECT_FALSE(client.allow);
  EXPECT_NE(client.reason.find("node-to-node"), std::string::npos) << client.reason;
}

TEST(Zap, OtherMechanismsAreRefused) {
  Keys k;
  for (const char* mechanism : {"NULL", "PLAIN", "GSSAPI"}) {
    auto v = zap_decide(k.policy(), zap_domain("chat", "clients"), mechanism, k.client);
    EXPECT_FALSE(v.allow) << mechanism;
  }
}

TEST(Zap, AKeyListedAsClientAndNodeKeepsTheNodesRights) {
  Keys k;
  ZapPolicy p;
  p.admit(k.node, "client");
  p.admit(k.node, "node b", true);
  EXPECT_TRUE(zap_decide(p, zap_domain("chat", "peers"), "CURVE", k.node).allow);
}

TEST(Zap, TheLogBudgetLetsABurstThroughThenOnePerInterval) {
  LogBudget budget(3, std::chrono::seconds(1));
  const auto t0 = LogBudget::Clock::time_point{} + std::chrono::hours(1);
  int logged = 0;
  for (int i = 0; i < 1000; ++i) logged += budget.take(t0);
  EXPECT_EQ(logged, 3) << "a flood at one instant logs the burst only";
  EXPECT_EQ(budget.take_suppressed(), 997u);
  EXPECT_EQ(budget.take_suppressed(), 0u) << "the count restarts once reported";
  EXPECT_FALSE(budget.take(t0 + std::chrono::milliseconds(999)));
  EXPECT_TRUE(budget.take(t0 + std::chrono::seconds(1)));
  EXPECT_FALSE(budget.take(t0 + std::chrono::milliseconds(1500)));
  // A long quiet spell refills the burst, never more.
  int after_quiet = 0;
  for (int i = 0; i < 10; ++i) after_quiet += budget.take(t0 + std::chrono::hours(1));
  EXPECT_EQ(after_quiet, 3);
}
