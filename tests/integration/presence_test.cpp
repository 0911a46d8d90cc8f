// Presence with real processes: a client process's session, its kill -9, its clean
// leave, a node restart, and the who command. Waits are on events, never sleeps.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/presence.hpp"

using namespace switchboard;
using namespace switchboard::client;
using switchboard::testing::Interactive;
using switchboard::testing::NodeProcess;
using switchboard::testing::run_command;
using switchboard::testing::TempDir;
using Kind = transport::PresenceEvent::Kind;
using SteadyClock = std::chrono::steady_clock;

using switchboard::testing::wait_event;

namespace {

constexpr int kHeartbeatMs = 200, kTtlMs = 600;
const std::vector<std::string> kFastPresence = {"--durability", "nosync", "--heartbeat-ms",
                                                std::to_string(kHeartbeatMs), "--session-ttl-ms",
                                                std::to_string(kTtlMs)};

struct Watcher {
  explicit Watcher(const NodeProcess& node, const std::string& room) {
    options = switchboard::testing::options_for(node);
    client = std::make_unique<Client>(options);
    EXPECT_TRUE(client->create_room(room, "watcher"));
    auto p = PresenceClient::connect(*client, options);
    EXPECT_TRUE(p);
    presence = std::move(*p);
    EXPECT_TRUE(presence->follow(room));
    // A SUB hears nothing until its subscription has reached the node: a probe user
    // joins the room (a presence `join` event) until the watcher hears it, then leaves.
    bool live = false;
    for (int attempt = 0; attempt < 40 && !live; ++attempt) {
      EXPECT_TRUE(client->join(room, "probe"));
      live = wait_event(*presence, "probe", Kind::join, Millis(500)).has_value();
      EXPECT_TRUE(client->leave(room, "probe"));
    }
    EXPECT_TRUE(live) << "the watcher's subscription never went live";
  }
  ClientOptions options;
  std::unique_ptr<Client> client;
  std::unique_ptr<PresenceClient> presence;
};

}  // namespace

TEST(PresenceProcesses, AClientKilledWithSigkillIsOfflineWithinIntervalPlusTtl) {
  TempDir data;
  NodeProcess node(data.path(), kFastPresence);
  Watcher watcher(node, "den");
  Interactive bob({"chat", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "den", "--user", "bob"});
  ASSERT_TRUE(wait_event(*watcher.presence, "bob", Kind::online, Millis(20'000))) << bob.output();
  // Bob's process keeps him online across several TTLs by heartbeating alone.
  auto held = wait_event(*watcher.presence, "bob", Kind::offline, Millis(3 * kTtlMs));
  EXPECT_FALSE(held) << "bob went offline while his process was heartbeating";

  bob.kill_hard();
  const auto killed = SteadyClock::now();
  auto offline = wait_event(*watcher.presence, "bob", Kind::offline, Millis(20'000));
  ASSERT_TRUE(offline) << "no offline event after kill -9";
  const auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - killed);
  // The configured bound: the last heartbeat came at most one interval before the
  // kill, and the session lives one TTL after it. 300 ms of slack for a loaded box.
  EXPECT_LE(took.count(), kHeartbeatMs + kTtlMs + 300) << "offline after " << took.count() << " ms";
  EXPECT_FALSE(watcher.presence->status("bob")->online);
  EXPECT_EQ(node.stop(), 0);
}

TEST(PresenceProcesses, ACleanLeaveIsReportedAtOnce) {
  TempDir data;
  // A TTL of a minute: an offline event within seconds can only be the clean leave.
  NodeProcess node(data.path(), {"--durability", "nosync", "--session-ttl-ms", "60000"});
  Watcher watcher(node, "den");
  Interactive bob({"chat", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "den", "--user", "bob"});
  ASSERT_TRUE(wait_event(*watcher.presence, "bob", Kind::online, Millis(20'000))) << bob.output();
  auto who = watcher.presence->who("den");
  ASSERT_TRUE(who);
  ASSERT_EQ(who->users.size(), 1u);
  EXPECT_EQ(who->users[0].user, "bob");

  bob.write_line("/status busy deploying");
  auto status = wait_event(*watcher.presence, "bob", Kind::status, Millis(20'000));
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, transport::Availability::busy);
  EXPECT_EQ(status->text, "deploying");

  const auto leaving = SteadyClock::now();
  EXPECT_EQ(bob.close_and_wait(), 0);  // end of input: chat leaves cleanly
  auto offline = wait_event(*watcher.presence, "bob", Kind::offline, Millis(10'000));
  ASSERT_TRUE(offline) << "no offline event after a clean leave";
  EXPECT_LT(std::chrono::duration_cast<Millis>(SteadyClock::now() - leaving).count(), 10'000);
  EXPECT_TRUE(watcher.presence->who("den")->users.empty());
  EXPECT_EQ(node.stop(), 0);
}

TEST(PresenceProcesses, ANodeRestartLosesNoOneForLong) {
  TempDir data;
  const std::string listen = "tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port());
  auto extra = kFastPresence;
  for (const char* flag : {"--publish", "--presence", "--presence-pub"}) {
    extra.push_back(flag);
    extra.push_back("tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port()));
  }
  auto node = std::make_unique<NodeProcess>(data.path(), extra, std::chrono::seconds(30), listen);
  ClientOptions options = switchboard::testing::options_for(*node);
  Client client(options);
  ASSERT_TRUE(client.create_room("den", "ann"));
  auto ann = PresenceClient::connect(client, options);
  ASSERT_TRUE(ann);
  ASSERT_TRUE((*ann)->open("ann"));
  ASSERT_TRUE((*ann)->status("ann")->online);

  node->kill_hard();
  node = std::make_unique<NodeProcess>(data.path(), extra, std::chrono::seconds(30), listen);
  // The new node knows no session; ann's client re-announces on its next heartbeat.
  Watcher watcher(*node, "den");
  // ann's client may have re-announced while the watcher was getting ready (its probe
  // reads past other events): then her status says so; else her online event comes.
  if (!watcher.presence->status("ann")->online) {
    ASSERT_TRUE(wait_event(*watcher.presence, "ann", Kind::online, Millis(20'000)));
  }
  EXPECT_TRUE(watcher.presence->status("ann")->online);
  ASSERT_TRUE((*ann)->close());  // joins the heartbeat thread: its counters are final
  EXPECT_GE((*ann)->reopened(), 1u);
  EXPECT_EQ(node->stop(), 0);
}

TEST(PresenceProcesses, WhoCommandListsOnlineMembersWithTheirStatus) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  ClientOptions options = switchboard::testing::options_for(node);
  Client client(options);
  ASSERT_TRUE(client.create_room("den", "ann"));
  ASSERT_TRUE(client.join("den", "bob"));
  auto ann = PresenceClient::connect(client, options);
  ASSERT_TRUE(ann);
  ASSERT_TRUE((*ann)->open("ann"));
  ASSERT_TRUE((*ann)->set_status(transport::Availability::away, "lunch"));

  auto r = run_command({"who", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "den", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);  // one line: only ann is online
  EXPECT_EQ(j["user"], "ann");
  EXPECT_EQ(j["status"], "away");
  EXPECT_EQ(j["text"], "lunch");
  auto missing = run_command({"who", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "nowhere"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no_such_room"), std::string::npos);
  EXPECT_EQ(node.stop(), 0);
}
