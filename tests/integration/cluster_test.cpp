// Three node processes from examples/topologies/three-nodes.toml, on loopback ports
// the test picks: forwarding to a room's owner, delivery to subscribers on every node,
// and what happens when an owner is killed with SIGKILL and comes back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <condition_variable>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client_helpers.hpp"
#include "cluster_process.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"

using namespace switchboard;
using namespace switchboard::client;
using switchboard::testing::Cluster;
using switchboard::testing::free_port;
using switchboard::testing::full_history;
using switchboard::testing::NodeProcess;
using switchboard::testing::receive;
using switchboard::testing::TempDir;
using switchboard::testing::wait_event;
using switchboard::testing::while_unavailable;
using Kind = transport::PresenceEvent::Kind;
using Clock = std::chrono::steady_clock;

namespace {

const int kHeartbeatMs = switchboard::testing::ClusterSettings{}.heartbeat_ms;
const int kMisses = switchboard::testing::ClusterSettings{}.misses;
const int kRequestTimeoutMs = switchboard::testing::ClusterSettings{}.request_timeout_ms;

/// Creates the room (through whichever node `c` talks to) with these members. Right
/// after the nodes start, their links may not be up yet: `unavailable` is retried
/// until the owner answers.
void make_room(Client& c, const std::string& room, const std::vector<std::string>& users) {
  auto created = while_unavailable([&] { return c.create_room(room, users.at(0)); });
  ASSERT_TRUE(created) << created.error().message;
  for (const auto& u : users) ASSERT_TRUE(c.join(room, u));
}

std::vector<std::uint64_t> seqs(const std::vector<transport::RoomMessage>& messages) {
  std::vector<std::uint64_t> out;
  for (const auto& m : messages) out.push_back(m.seq);
  return out;
}

std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 1; i <= n; ++i) out.push_back(i);
  return out;
}

}  // namespace

TEST(Cluster, PublishedThroughOneNodeSubscribersOnTheOthersSeeTheSameGaplessOrder) {
  Cluster cluster;
  cluster.start_all();
  const std::string room = cluster.room_owned_by("c", "forwarded");

  Client on_a(cluster.client_of("a"));
  make_room(on_a, room, {"alice"});
  Client on_b(cluster.client_of("b")), on_c(cluster.client_of("c"));
  // Right after the start a node may hear another's heartbeats before its own link
  // for requests to it is up: `unavailable` then, asked again.
  ASSERT_TRUE(while_unavailable([&] { return on_b.subscribe(room, 0); }));
  ASSERT_TRUE(while_unavailable([&] { return on_c.subscribe(room, 0); }));

  constexpr int kMessages = 400;
  std::vector<std::uint64_t> acked;
  for (int i = 0; i < kMessages; ++i)
    on_a.publish_async(room, "alice", "message " + std::to_string(i), [&](const Result<transport::PublishOk>& ok) {
      EXPECT_TRUE(ok) << ok.error().message;
      if (ok) acked.push_back(ok->seq);
    });
  ASSERT_TRUE(on_a.wait_all());
  std::sort(acked.begin(), acked.end());
  EXPECT_EQ(acked, one_to(kMessages));

  // b's link to c may come up after its subscriber's first requests: `unavailable`
  // then, and the subscription carries on.
  auto seen_b = receive(on_b, kMessages, true);
  auto seen_c = receive(on_c, kMessages);
  ASSERT_EQ(seqs(seen_b), one_to(kMessages));
  ASSERT_EQ(seqs(seen_c), one_to(kMessages));
  EXPECT_EQ(seen_b, seen_c);
  // Acked in pipelined order from one connection: stored in that order too.
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(seen_b[i].body, "message " + std::to_string(i));
  // The same from the node that owns the room, and from one that does not.
  EXPECT_EQ(full_history(on_b, room), seen_b);
  EXPECT_EQ(full_history(on_c, room), seen_b);
  auto last = on_b.last_seq(room);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, static_cast<std::uint64_t>(kMessages));
}

TEST(Cluster, RoomListsAndMembersComeFromEveryNode) {
  Cluster cluster;
  cluster.start_all();
  Client on_b(cluster.client_of("b"));
  std::vector<std::string> rooms = {cluster.room_owned_by("a", "list"), cluster.room_owned_by("b", "list"),
                                    cluster.room_owned_by("c", "list")};
  for (const auto& r : rooms) make_room(on_b, r, {"carol", "dave"});
  std::sort(rooms.begin(), rooms.end());

  Client on_a(cluster.client_of("a"));
  // a's links to b and c may still be coming up (a started first): a node a cannot
  // reach yet is named in `missing`, and its rooms are left out. Ask until none is.
  auto listed = on_a.rooms("carol");
  for (const auto deadline = Clock::now() + std::chrono::seconds(20);
       listed && !listed->missing.empty() && Clock::now() < deadline;)
    listed = on_a.rooms("carol");
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_TRUE(listed->missing.empty());
  EXPECT_EQ(listed->rooms, rooms);
  auto members = on_a.members(rooms[2]);
  ASSERT_TRUE(members);
  EXPECT_EQ(*members, (std::vector<std::string>{"carol", "dave"}));
}

TEST(Cluster, PresenceShowsUsersOnlineOnAnyNodeInEveryNodesWhoAndEvents) {
  Cluster cluster;
  cluster.start_all();
  const std::string room = cluster.room_owned_by("c", "presence");
  Client on_a(cluster.client_of("a")), on_b(cluster.client_of("b")), on_c(cluster.client_of("c"));
  make_room(on_a, room, {"ann", "bob", "watch"});
  // Every node learns c's rooms and their members from c's presence, within a few
  // heartbeats of starting. `who` on node N once that is done, and while it is not
  // yet, users online anywhere (`want`), waited for at most 20 s.
  std::map<std::string, std::unique_ptr<PresenceClient>> asking;
  for (auto [node, via] : {std::pair{"a", &on_a}, std::pair{"b", &on_b}, std::pair{"c", &on_c}}) {
    auto p = PresenceClient::connect(*via, cluster.client_of(node));
    ASSERT_TRUE(p) << p.error().message;
    asking[node] = std::move(*p);
  }
  auto online_on = [&](const std::string& node, const std::vector<std::string>& want) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    std::optional<std::vector<std::string>> users;  // none while the room is not known there
    while ((!users || *users != want) && Clock::now() < deadline) {
      auto who = asking[node]->who(room);
      if (!who && who.error().code == errc::no_such_room) continue;
      EXPECT_TRUE(who) << who.error().message;
      if (!who) break;
      users.emplace();
      for (const auto& u : who->users) users->push_back(u.user);
    }
    return users;
  };
  auto watcher = PresenceClient::connect(on_b, cluster.client_of("b"));
  ASSERT_TRUE(watcher) << watcher.error().message;
  ASSERT_EQ(online_on("b", {}), std::vector<std::string>{}) << "b knows the room: follow it now";
  ASSERT_TRUE((*watcher)->follow(room));
  // A subscription takes a moment to reach the publisher: until it has, events are not
  // delivered. The watcher types (an event that changes nothing) until it sees its own.
  ASSERT_TRUE((*watcher)->open("watch"));
  bool live = false;
  for (const auto deadline = Clock::now() + std::chrono::seconds(20); !live && Clock::now() < deadline;) {
    auto typed = (*watcher)->typing(room);
    if (!typed && typed.error().code == errc::rate_limited) {
      live = wait_event(**watcher, "watch", Kind::typing, Millis(100)).has_value();
      continue;
    }
    ASSERT_TRUE(typed) << typed.error().message;
    live = wait_event(**watcher, "watch", Kind::typing, Millis(1000)).has_value();
  }
  ASSERT_TRUE(live) << "the watcher's subscription never became live";

  auto ann = PresenceClient::connect(on_a, cluster.client_of("a"));
  auto bob = PresenceClient::connect(on_c, cluster.client_of("c"));
  ASSERT_TRUE(ann && bob);
  ASSERT_TRUE((*ann)->open("ann"));
  ASSERT_TRUE(wait_event(**watcher, "ann", Kind::online, Millis(20'000))) << "ann's session is on a; b shows her";
  ASSERT_TRUE((*bob)->open("bob"));
  ASSERT_TRUE(wait_event(**watcher, "bob", Kind::online, Millis(20'000)));
  ASSERT_TRUE((*ann)->set_status(transport::Availability::busy, "in a call"));
  auto status = wait_event(**watcher, "ann", Kind::status, Millis(20'000));
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, transport::Availability::busy);
  EXPECT_EQ(status->text, "in a call");
  ASSERT_TRUE((*bob)->typing(room)) << "typing on c, in a room c owns";
  EXPECT_TRUE(wait_event(**watcher, "bob", Kind::typing, Millis(20'000)));

  for (const char* node : {"a", "b", "c"})
    EXPECT_EQ(online_on(node, {"ann", "bob", "watch"}), (std::vector<std::string>{"ann", "bob", "watch"}))
        << "who on " << node << " lists users online on any node";

  // a dies with ann's session: after its missed heartbeats, b shows her offline.
  cluster.node("a").kill_hard();
  EXPECT_TRUE(wait_event(**watcher, "ann", Kind::offline, Millis(20'000)));
  EXPECT_EQ(online_on("b", {"bob", "watch"}), (std::vector<std::string>{"bob", "watch"}));
  EXPECT_EQ(online_on("c", {"bob", "watch"}), (std::vector<std::string>{"bob", "watch"}));
}

TEST(Cluster, KillNineOfAnOwnerFailsItsRoomsFastKeepsTheOthersAndLosesNothing) {
  Cluster cluster;
  cluster.start_all();
  const std::string ra = cluster.room_owned_by("a", "steady"), rb = cluster.room_owned_by("b", "steady"),
                    rc = cluster.room_owned_by("c", "fragile");
  {
    Client setup(cluster.client_of("a"));
    for (const auto& r : {ra, rb, rc}) make_room(setup, r, {"writer"});
  }
  Client sub_a(cluster.client_of("a")), sub_b(cluster.client_of("b"));
  ASSERT_TRUE(while_unavailable([&] { return sub_a.subscribe(rc, 0); }));
  ASSERT_TRUE(while_unavailable([&] { return sub_b.subscribe(rc, 0); }));

  // The load: one writer through node a, round robin over the three rooms.
  std::mutex mu;
  std::condition_variable changed;
  std::map<std::string, std::uint64_t> ok_count;
  std::vector<std::uint64_t> acked_rc;
  int unavailable_rc = 0, other_errors = 0;
  Clock::duration slowest_unavailable{};
  bool stop = false;
  std::thread writer([&] {
    ClientOptions o = cluster.client_of("a");
    o.max_attempts = 1;  // a timeout would show as an error, never as a retry
    o.attempt_timeout = Millis(10'000);
    Client c(o);
    for (int i = 0;; ++i) {
      {
        std::lock_guard lock(mu);
        if (stop) return;
      }
      const std::string& room = i % 3 == 0 ? ra : i % 3 == 1 ? rb : rc;
      const auto sent = Clock::now();
      auto r = c.publish(room, "writer", "m" + std::to_string(i));
      const auto took = Clock::now() - sent;
      std::lock_guard lock(mu);
      if (r) {
        ++ok_count[room];
        if (room == rc) acked_rc.push_back(r->seq);
      } else if (room == rc && r.error().code == errc::unavailable) {
        ++unavailable_rc;
        slowest_unavailable = std::max(slowest_unavailable, took);
      } else {
        ++other_errors;
        ADD_FAILURE() << room << ": " << errc_name(r.error().code) << ": " << r.error().message;
      }
      changed.notify_all();
    }
  });
  auto wait_for = [&](auto condition, const char* what) {
    std::unique_lock lock(mu);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(60), condition)) << "waited a minute for " << what;
  };

  wait_for([&] { return acked_rc.size() >= 100; }, "100 acks from c");
  const auto killed_at = Clock::now();
  cluster.node("c").kill_hard();
  std::uint64_t a_before = 0, b_before = 0;
  {
    std::lock_guard lock(mu);
    a_before = ok_count[ra];
    b_before = ok_count[rb];
  }
  wait_for([&] { return unavailable_rc >= 1; }, "the first unavailable");
  const auto first_unavailable = Clock::now() - killed_at;
  wait_for([&] { return unavailable_rc >= 50 && ok_count[ra] >= a_before + 50 && ok_count[rb] >= b_before + 50; },
           "rooms of a and b to go on while c is down");
  {
    // The room list says which node and which shard did not answer, and has the rest.
    Client lister(cluster.client_of("a"));
    auto listed = lister.rooms("writer");
    ASSERT_TRUE(listed) << listed.error().message;
    EXPECT_EQ(listed->missing, (std::vector<std::string>{"c"}));
    EXPECT_EQ(listed->missing_shards.size(), 1u) << "c's one shard, which has no replica";
    EXPECT_EQ(listed->rooms, (std::vector<std::string>{std::min(ra, rb), std::max(ra, rb)}));
  }

  cluster.start("c");
  std::size_t acked_before_restart = 0;
  {
    std::lock_guard lock(mu);
    acked_before_restart = acked_rc.size();
  }
  wait_for([&] { return acked_rc.size() >= acked_before_restart + 100; }, "c's room to work again");
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  writer.join();

  EXPECT_EQ(other_errors, 0);
  std::cout << "c down: first unavailable after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(first_unavailable).count() << " ms, "
            << unavailable_rc << " unavailable, slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest_unavailable).count() << " ms\n";
  // Fail fast: the first failure within the heartbeat bound (plus one beat of timer
  // granularity and scheduling slack), and none ever waits for the request timeout.
  EXPECT_LT(first_unavailable, std::chrono::milliseconds(kHeartbeatMs * (kMisses + 1) + 1000));
  EXPECT_LT(slowest_unavailable, std::chrono::milliseconds(kRequestTimeoutMs));

  // Nothing acked is lost: the history is gapless and holds every acked seq.
  Client reader(cluster.client_of("b"));
  auto history = full_history(reader, rc);
  ASSERT_EQ(seqs(history), one_to(history.size()));
  const auto history_seqs = seqs(history);
  std::set<std::uint64_t> stored(history_seqs.begin(), history_seqs.end());
  for (auto seq : acked_rc) EXPECT_TRUE(stored.count(seq)) << "acked seq " << seq << " is not stored";
  // Subscribers on a and b got all of it, in order, across the outage.
  EXPECT_EQ(receive(sub_a, history.size(), true), history);
  EXPECT_EQ(receive(sub_b, history.size(), true), history);
}

TEST(Cluster, AHungOwnerIsDeclaredDownByMissedHeartbeatsAndProbedBackIn) {
  Cluster cluster;
  cluster.start_all();
  const std::string rc = cluster.room_owned_by("c", "hung"), rb = cluster.room_owned_by("b", "awake");
  ClientOptions o = cluster.client_of("a");
  o.max_attempts = 1;
  o.attempt_timeout = Millis(10'000);
  Client c(o);
  make_room(c, rc, {"writer"});
  make_room(c, rb, {"writer"});
  ASSERT_TRUE(c.publish(rc, "writer", "before"));

  // SIGSTOP: the connection stays open, so only the heartbeats can tell.
  ASSERT_EQ(::kill(cluster.node("c").pid(), SIGSTOP), 0);
  // The signal takes effect a moment later: wait until the process shows as stopped.
  auto state = [&] {
    std::ifstream stat("/proc/" + std::to_string(cluster.node("c").pid()) + "/stat");
    std::string pid, comm, st;
    stat >> pid >> comm >> st;
    return st;
  };
  while (state() != "T") std::this_thread::yield();
  const auto stopped_at = Clock::now();
  auto r = c.publish(rc, "writer", "while hung");
  const auto took = Clock::now() - stopped_at;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unavailable) << r.error().message;
  EXPECT_LT(took, std::chrono::milliseconds(kHeartbeatMs * (kMisses + 2) + 1000));
  // Now the breaker is open: the next request fails at once, and b's rooms work.
  const auto again = Clock::now();
  auto fast = c.publish(rc, "writer", "still hung");
  ASSERT_FALSE(fast);
  EXPECT_EQ(fast.error().code, errc::unavailable);
  EXPECT_LT(Clock::now() - again, std::chrono::milliseconds(kHeartbeatMs));
  EXPECT_TRUE(c.publish(rb, "writer", "b is fine"));

  // SIGCONT: a probe is answered and the breaker closes.
  ASSERT_EQ(::kill(cluster.node("c").pid(), SIGCONT), 0);
  auto back = while_unavailable([&] { return c.publish(rc, "writer", "after", "after-1"); });
  ASSERT_TRUE(back) << back.error().message;
  // The seq after whatever c took in while hung (an `unavailable` reply means "not
  // known to be stored", so those may be there).
  auto history = full_history(c, rc);
  ASSERT_EQ(seqs(history), one_to(history.size()));
  EXPECT_EQ(history.back().body, "after");
  EXPECT_EQ(history.front().body, "before");
}

TEST(Services, AModerationBotRefusesBeforeStorageAndAnEchoBotAnswersThroughAnyNode) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  Cluster cluster("[services.bot]\nendpoint = \"" + endpoint + "\"\nhook = \"publish\"\ntimeout_ms = " +
                  std::to_string(kRequestTimeoutMs) + "\n");
  cluster.start_all();
  const std::string guarded = cluster.room_owned_by("c", "guarded"), echo = cluster.room_owned_by("b", "echo");
  // The bot is its own process, a client of node a, with the example word list.
  NodeProcess bot(NodeProcess::Args{{"--config", cluster.file().string(), "--service", "bot", "--node", "a", "--words",
                                     std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/bot/words.txt", "--echo", echo},
                                    SWITCHBOARD_BOT, "bot ready "});

  Client on_b(cluster.client_of("b"));
  make_room(on_b, guarded, {"mallory", "walter"});
  ASSERT_TRUE(while_unavailable([&] { return on_b.subscribe(guarded, 0); }));
  // The nodes started before the bot: their links to it come up within a second.
  // Until then the hook cannot be asked, and a publish is refused `unavailable`.
  auto fine = while_unavailable([&] { return on_b.publish(guarded, "walter", "hello all", "first"); });
  ASSERT_TRUE(fine) << fine.error().message;
  auto spam = on_b.publish(guarded, "mallory", "cheap SPAM here");
  ASSERT_FALSE(spam);
  EXPECT_EQ(spam.error().code, errc::refused);
  EXPECT_NE(spam.error().message.find("spam"), std::string::npos) << spam.error().message;
  auto after = on_b.publish(guarded, "walter", "still here");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->seq, fine->seq + 1) << "a refused message takes no seq";
  auto history = full_history(on_b, guarded);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].body, "hello all");
  EXPECT_EQ(history[1].body, "still here");
  auto seen = receive(on_b, 2);
  EXPECT_EQ(seen, history);

  // The echo bot follows its room through node a; people post through node c.
  Client on_c(cluster.client_of("c"));
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  Result<bool> joined = make_error(errc::no_such_room, "not yet");
  while (!joined && Clock::now() < deadline) joined = on_c.join(echo, "ann");  // the bot creates it
  ASSERT_TRUE(joined) << joined.error().message;
  ASSERT_TRUE(while_unavailable([&] { return on_c.subscribe(echo, 0); }));
  // The bot's subscription takes a moment to reach the room's owner: what it misses
  // it never echoes, so wait until an echo comes back before counting.
  std::vector<transport::RoomMessage> got;
  for (int i = 0; got.empty() && Clock::now() < deadline; ++i) {
    // b (the room's owner) may not have its link to the bot yet: `unavailable`, again.
    auto sent = on_c.publish(echo, "ann", "ping " + std::to_string(i));
    if (!sent && sent.error().code == errc::unavailable) continue;
    ASSERT_TRUE(sent) << sent.error().message;
    for (auto& m : receive(on_c, 1)) got.push_back(m);
    while (true) {
      auto m = on_c.next(Millis(200));
      ASSERT_TRUE(m);
      if (!*m) break;
      got.push_back(**m);
    }
    std::erase_if(got, [](const transport::RoomMessage& m) { return m.user != "echo-bot"; });
  }
  ASSERT_FALSE(got.empty()) << "no echo within 20 s";
  EXPECT_EQ(got.front().body.rfind("echo: ping ", 0), 0u) << got.front().body;

  // Clients call the bot by name through any node.
  Client on_a(cluster.client_of("a"));
  for (Client* via : {&on_a, &on_b, &on_c}) {
    auto ok = while_unavailable([&] { return via->call_service("bot", "ann", "check hello there"); });
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(*ok, "ok");
  }
  auto verdict = on_c.call_service("bot", "ann", "check buy SCAM coins");
  ASSERT_TRUE(verdict) << verdict.error().message;
  EXPECT_NE(verdict->find("scam"), std::string::npos) << *verdict;
  auto stats = on_a.call_service("bot", "ann", "stats");
  ASSERT_TRUE(stats) << stats.error().message;
  auto counts = nlohmann::json::parse(*stats);
  EXPECT_GE(counts.at("checked").get<int>(), 3) << *stats;
  EXPECT_EQ(counts.at("refused").get<int>(), 1) << *stats;
  auto unknown = on_b.call_service("bot", "ann", "dance");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, errc::bad_field) << "the service's own error, passed on";
  auto nobody = on_b.call_service("nobody", "ann", "hi");
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().code, errc::no_such_service);
  // The same from the command line.
  auto cli = switchboard::testing::run_command(
      {"call", "--keys", cluster.node("c").keys_dir(), "--connect", cluster.node("c").client_endpoint(), "--service", "bot", "--user", "ann", "check hi"});
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(cli.out, "ok\n");
  auto cli_nobody = switchboard::testing::run_command(
      {"call", "--keys", cluster.node("c").keys_dir(), "--connect", cluster.node("c").client_endpoint(), "--service", "nobody", "--user", "ann", "hi"});
  EXPECT_EQ(cli_nobody.status, 1);
  EXPECT_NE(cli_nobody.err.find("no_such_service"), std::string::npos) << cli_nobody.err;

  // With the bot gone, the hook cannot answer: publishes fail `unavailable`, fast,
  // and nothing unchecked is stored. Calls fail the same way.
  bot.kill_hard();
  auto call_gone = on_a.call_service("bot", "ann", "stats");
  ASSERT_FALSE(call_gone);
  EXPECT_EQ(call_gone.error().code, errc::unavailable);
  auto unchecked = on_b.publish(guarded, "walter", "while the bot is down");
  ASSERT_FALSE(unchecked);
  EXPECT_EQ(unchecked.error().code, errc::unavailable);
  EXPECT_EQ(full_history(on_b, guarded).size(), 2u);
}

TEST(Cluster, AHistoryPageLargerThanARequestMayBeComesThroughAnotherNode) {
  Cluster cluster;
  cluster.start_all();
  const std::string room = cluster.room_owned_by("c", "big");
  Client on_a(cluster.client_of("a"));
  make_room(on_a, room, {"writer"});
  const std::string body(60'000, 'x');  // 100 of them: a 6 MB page, past a request's 1 MiB
  for (int i = 0; i < 100; ++i)
    on_a.publish_async(room, "writer", body, [](const Result<transport::PublishOk>& ok) {
      EXPECT_TRUE(ok) << ok.error().message;
    });
  ASSERT_TRUE(on_a.wait_all());
  auto page = on_a.history(room, HistoryQuery{100, std::nullopt, 0});
  ASSERT_TRUE(page) << page.error().message;
  // Pages are capped in bytes too (a few MiB): more than 1 MiB of it, in order.
  ASSERT_GT(page->messages.size() * body.size(), std::size_t{1} << 20);
  EXPECT_EQ(seqs(page->messages), one_to(page->messages.size()));
  EXPECT_EQ(page->messages.back().body, body);
  EXPECT_EQ(page->more, page->messages.size() < 100);
  // The link to c survived it: c's rooms still answer through a.
  EXPECT_TRUE(on_a.publish(room, "writer", "after"));
}
