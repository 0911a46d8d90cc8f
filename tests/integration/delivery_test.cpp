// Real node processes on loopback, real clients: ordering, delivery, repair and
// durability as a user relies on them. Waits are on replies and events, never sleeps.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using namespace switchboard::client;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::full_history;
using switchboard::testing::receive;
using switchboard::testing::options_for;

namespace {

void make_room(Client& c, const std::string& room, const std::vector<std::string>& users) {
  ASSERT_TRUE(c.create_room(room, users.at(0)));
  for (const auto& u : users) ASSERT_TRUE(c.join(room, u));
}

/// Publishes `count` messages of `body` + their index, pipelined, and waits for every ack:
/// a burst far beyond what PUB queues per subscriber (10 000) plus the kernel's buffers,
/// when nobody reads.
void publish_burst(Client& publisher, const std::string& room, int count, const std::string& body) {
  int failed = 0;
  for (int i = 0; i < count; ++i)
    publisher.publish_async(room, "ann", body + std::to_string(i),
                            [&](const Result<transport::PublishOk>& ack) { failed += !ack; });
  ASSERT_TRUE(publisher.wait_all());
  ASSERT_EQ(failed, 0);
}

}  // namespace

TEST(Delivery, ConcurrentPublishersAndTwoSubscribersSeeTheSameGaplessSequence) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  Client admin(options_for(node));
  make_room(admin, "lobby", {"p0", "p1", "p2"});

  constexpr int kPublishers = 3, kEach = 300;
  Client sub_a(options_for(node)), sub_b(options_for(node));
  ASSERT_TRUE(sub_a.subscribe("lobby", 0));
  ASSERT_TRUE(sub_b.subscribe("lobby", 0));

  std::mutex mu;
  std::map<std::string, std::uint64_t> acked;  // cmid -> seq
  std::atomic<int> failures{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      Client c(options_for(node));
      std::string user = "p" + std::to_string(p);
      for (int i = 0; i < kEach; ++i) {
        std::string cmid = user + "-" + std::to_string(i);
        c.publish_async("lobby", user, "message " + std::to_string(i) + " from " + user,
                        [&, cmid](const Result<transport::PublishOk>& ack) {
                          if (!ack) { ++failures; return; }
                          std::lock_guard lock(mu);
                          acked[cmid] = ack->seq;
                        },
                        cmid);
      }
      c.wait_all();
    });
  }
  std::vector<transport::RoomMessage> seen_a, seen_b;
  std::thread reader_b([&] { seen_b = receive(sub_b, kPublishers * kEach); });
  seen_a = receive(sub_a, kPublishers * kEach);
  reader_b.join();
  for (auto& t : publishers) t.join();

  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(kPublishers * kEach));
  for (const auto* seen : {&seen_a, &seen_b}) {
    ASSERT_EQ(seen->size(), acked.size());
    std::set<std::string> cmids;
    for (std::size_t i = 0; i < seen->size(); ++i) {
      const auto& m = (*seen)[i];
      EXPECT_EQ(m.seq, i + 1) << "gap or reordering at position " << i;
      EXPECT_TRUE(cmids.insert(m.client_msg_id).second) << "delivered twice: " << m.client_msg_id;
      auto it = acked.find(m.client_msg_id);
      ASSERT_NE(it, acked.end()) << "delivered but never acked: " << m.client_msg_id;
      EXPECT_EQ(it->second, m.seq) << "delivered under another seq than acked";
    }
  }
  EXPECT_EQ(seen_a, seen_b);
  // Per publisher, its own messages keep the order it sent them in.
  std::map<std::string, int> last_index;
  for (const auto& m : seen_a) {
    int index = std::stoi(m.client_msg_id.substr(m.client_msg_id.find('-') + 1));
    auto [it, first] = last_index.try_emplace(m.user, index);
    if (!first) {
      EXPECT_GT(index, it->second) << m.user << " reordered";
      it->second = index;
    }
  }
  EXPECT_EQ(node.stop(), 0);
}

TEST(Delivery, SubscriberWithTinyReceiveQueueRepairsEveryGapInOrder) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  Client publisher(options_for(node));
  make_room(publisher, "burst", {"ann"});

  ClientOptions sub_options = options_for(node);
  sub_options.sub_rcvhwm = 1;
  Client subscriber(sub_options);
  ASSERT_TRUE(subscriber.subscribe("burst", 0));

  // While the subscriber reads nothing: PUB must drop.
  constexpr int kBurst = 20000;
  const std::string body(1024, 'x');
  publish_burst(publisher, "burst", kBurst, body);

  auto got = receive(subscriber, kBurst);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kBurst));
  for (int i = 0; i < kBurst; ++i) {
    ASSERT_EQ(got[i].seq, static_cast<std::uint64_t>(i + 1));
    ASSERT_EQ(got[i].body, body + std::to_string(i));
  }
  const auto& stats = subscriber.subscription_stats();
  EXPECT_GT(stats.repaired, 0u) << "the burst was meant to overflow PUB; nothing needed repair";
  EXPECT_EQ(stats.live + stats.repaired, static_cast<std::uint64_t>(kBurst));
  // Nothing more arrives: every message exactly once.
  auto extra = subscriber.next(Millis(300));
  ASSERT_TRUE(extra);
  EXPECT_FALSE(*extra);
}

TEST(Delivery, ASubscriberOfManyIdleRoomsAsksNothingOnceSettledAndHearsTheNodesHeads) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  Client admin(options_for(node));
  constexpr int kRooms = 300;
  for (int i = 0; i < kRooms; ++i) ASSERT_TRUE(admin.create_room("idle-" + std::to_string(i), "ann"));
  Client subscriber(options_for(node));
  for (int i = 0; i < kRooms; ++i) ASSERT_TRUE(subscriber.subscribe("idle-" + std::to_string(i)));
  // Each room is checked once after its subscribe (what was published while the
  // subscription reached the node); then nothing is published and nothing is asked.
  auto none = subscriber.next(Millis(1500));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  const auto settled = subscriber.subscription_stats();
  EXPECT_LE(settled.checks, static_cast<std::uint64_t>(kRooms));
  EXPECT_EQ(settled.fetches, 0u);
  none = subscriber.next(Millis(2500));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  const auto idle = subscriber.subscription_stats();
  EXPECT_EQ(idle.checks, settled.checks) << "an idle room costs no request";
  EXPECT_EQ(idle.fetches, 0u);
  EXPECT_GE(idle.heads, settled.heads + 2) << "the node's heads keepalive, about one a second";
  EXPECT_LE(idle.heads, settled.heads + 6);
  EXPECT_EQ(idle.heads_gaps, 0u);
  EXPECT_EQ(node.stop(), 0);
}

TEST(Delivery, ALoneMessageAfterABurstInAnotherRoomArrivesThoughNoRoomIsPolled) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  Client publisher(options_for(node));
  make_room(publisher, "busy", {"ann"});
  make_room(publisher, "quiet", {"ann"});
  ClientOptions sub_options = options_for(node);
  sub_options.sub_rcvhwm = 1;
  Client subscriber(sub_options);
  ASSERT_TRUE(subscriber.subscribe("busy", 0));
  ASSERT_TRUE(subscriber.subscribe("quiet", 0));
  // Both rooms publish once and a heads event names them: from then on neither is
  // checked when quiet.
  ASSERT_TRUE(publisher.publish("busy", "ann", "first"));
  ASSERT_TRUE(publisher.publish("quiet", "ann", "first"));
  ASSERT_EQ(receive(subscriber, 2).size(), 2u);
  auto none = subscriber.next(Millis(800));
  ASSERT_TRUE(none);
  ASSERT_FALSE(*none);
  const auto settled = subscriber.subscription_stats();

  // A burst in one room while the subscriber reads nothing, then one message in the
  // other: its live copy is likely dropped with the burst's, and nothing comes after it.
  constexpr int kBurst = 20000;
  publish_burst(publisher, "busy", kBurst, std::string(1024, 'x'));
  ASSERT_TRUE(publisher.publish("quiet", "ann", "the lone one"));

  auto got = receive(subscriber, kBurst + 1);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kBurst + 1));
  std::map<std::string, std::uint64_t> last{{"busy", 1}, {"quiet", 1}};
  for (const auto& m : got) {
    ASSERT_EQ(m.seq, last[m.room] + 1) << "a gap or a repeat in " << m.room;
    last[m.room] = m.seq;
  }
  EXPECT_EQ(last["busy"], static_cast<std::uint64_t>(kBurst + 1));
  EXPECT_EQ(last["quiet"], 2u) << "the lone message";
  const auto after = subscriber.subscription_stats();
  // No room was polled: a last_seq was asked only for heads events the burst dropped.
  EXPECT_LE(after.checks - settled.checks, 2 * (after.heads_gaps - settled.heads_gaps));
  EXPECT_EQ(node.stop(), 0);
}

TEST(Delivery, LateSubscriberGetsHistoryThenLiveWithoutGapOrDuplicate) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  Client c(options_for(node));
  make_room(c, "late", {"ann"});
  for (int i = 1; i <= 50; ++i) ASSERT_TRUE(c.publish("late", "ann", "early " + std::to_string(i)));

  Client sub(options_for(node));
  ASSERT_TRUE(sub.subscribe("late", 20));  // saw up to 20 before (say) a reconnect
  for (int i = 51; i <= 80; ++i) ASSERT_TRUE(c.publish("late", "ann", "live " + std::to_string(i)));
  auto got = receive(sub, 60);
  ASSERT_EQ(got.size(), 60u);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, 21 + i);

  Client now_only(options_for(node));
  ASSERT_TRUE(now_only.subscribe("late"));  // from now on
  ASSERT_TRUE(c.publish("late", "ann", "after subscribe"));
  auto one = receive(now_only, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].seq, 81u);
  EXPECT_EQ(one[0].body, "after subscribe");
}

TEST(Delivery, SubscriberRidesThroughANodeCrashAndRestartWithoutGapOrDuplicate) {
  TempDir data;
  const std::string listen = "tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port());
  const std::vector<std::string> same_endpoints = {"--publish",
                                                   "tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port())};
  auto node = std::make_unique<NodeProcess>(data.path(), same_endpoints, std::chrono::seconds(30), listen);
  ClientOptions o = options_for(*node);  // the node's keys stay in its data directory across the restart
  Client publisher(o);
  make_room(publisher, "steady", {"ann"});
  Client follower(o);
  ASSERT_TRUE(follower.subscribe("steady", 0));
  for (int i = 1; i <= 100; ++i) ASSERT_TRUE(publisher.publish("steady", "ann", "before " + std::to_string(i)));
  auto first = receive(follower, 60);  // part of it now; the rest after the restart
  ASSERT_EQ(first.size(), 60u);

  node->kill_hard();
  node = std::make_unique<NodeProcess>(data.path(), same_endpoints, std::chrono::seconds(30), listen);
  for (int i = 101; i <= 200; ++i) ASSERT_TRUE(publisher.publish("steady", "ann", "after " + std::to_string(i)));

  auto rest = receive(follower, 140);
  ASSERT_EQ(rest.size(), 140u);
  first.insert(first.end(), rest.begin(), rest.end());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].seq, i + 1);
    EXPECT_EQ(first[i].body, (i < 100 ? "before " : "after ") + std::to_string(i + 1));
  }
  auto extra = follower.next(Millis(300));
  ASSERT_TRUE(extra);
  EXPECT_FALSE(*extra) << "delivered more than was published";
  EXPECT_EQ(node->stop(), 0);
}

TEST(Durability, KillDashNineLosesNothingAcknowledgedAndRetriesAreNotDuplicated) {
  TempDir data;
  constexpr int kTotal = 10000, kKillAfter = 400;
  std::map<std::string, std::uint64_t> acked;  // cmid -> seq
  std::vector<std::string> cmids;
  {
    NodeProcess node(data.path(), {"--durability", "sync"});
    ClientOptions o = options_for(node);
    o.attempt_timeout = Millis(1000);
    o.max_attempts = 3;
    Client c(o);
    make_room(c, "ledger", {"ann"});

    std::mutex mu;
    std::condition_variable cv;
    std::atomic<bool> killed{false};
    bool publishing_done = false;
    std::thread killer([&] {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return acked.size() >= kKillAfter || publishing_done; });
      if (acked.size() < kKillAfter) return;
      node.kill_hard();  // mid-stream: publishes are in flight
      killed = true;
    });
    // Publish until the node is killed; what is in flight then fails or was acked.
    for (int i = 0; i < kTotal && !killed; ++i) {
      std::string cmid = "ledger-" + std::to_string(i);
      cmids.push_back(cmid);
      c.publish_async("ledger", "ann", "entry " + std::to_string(i),
                      [&, cmid](const Result<transport::PublishOk>& ack) {
                        if (!ack) return;
                        std::lock_guard lock(mu);
                        acked[cmid] = ack->seq;
                        cv.notify_all();
                      },
                      cmid);
    }
    c.wait_all(Millis(120'000));
    {
      std::lock_guard lock(mu);
      publishing_done = true;
      cv.notify_all();
    }
    killer.join();
    ASSERT_TRUE(killed) << "only " << acked.size() << " publishes were acknowledged";
    ASSERT_LT(acked.size(), cmids.size()) << "nothing was in flight at the kill";
  }

  NodeProcess node(data.path(), {"--durability", "sync"});
  Client c(options_for(node));
  // Every acked message is there, under the seq it was acked with.
  auto before_retry = full_history(c, "ledger");
  std::map<std::string, std::uint64_t> stored;
  for (std::size_t i = 0; i < before_retry.size(); ++i) {
    EXPECT_EQ(before_retry[i].seq, i + 1) << "gap in stored seqs";
    EXPECT_TRUE(stored.emplace(before_retry[i].client_msg_id, before_retry[i].seq).second)
        << "stored twice: " << before_retry[i].client_msg_id;
  }
  for (const auto& [cmid, seq] : acked) {
    auto it = stored.find(cmid);
    ASSERT_NE(it, stored.end()) << "acknowledged but lost: " << cmid;
    EXPECT_EQ(it->second, seq);
  }
  // The publisher retries everything with the same ids: nothing is stored twice.
  int duplicates = 0, failed = 0;
  for (const auto& cmid : cmids) {
    c.publish_async("ledger", "ann", "entry " + cmid.substr(7),
                    [&, cmid](const Result<transport::PublishOk>& ack) {
                      if (!ack) { ++failed; return; }
                      auto it = stored.find(cmid);
                      if (it == stored.end()) return;
                      EXPECT_TRUE(ack->duplicate) << cmid;
                      EXPECT_EQ(ack->seq, it->second) << cmid;
                      ++duplicates;
                    },
                    cmid);
  }
  ASSERT_TRUE(c.wait_all(Millis(120'000)));
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(duplicates, static_cast<int>(stored.size()));
  auto after_retry = full_history(c, "ledger");
  ASSERT_EQ(after_retry.size(), cmids.size());
  std::set<std::string> once;
  for (std::size_t i = 0; i < after_retry.size(); ++i) {
    EXPECT_EQ(after_retry[i].seq, i + 1);
    EXPECT_TRUE(once.insert(after_retry[i].client_msg_id).second);
  }
  EXPECT_EQ(node.stop(), 0);
}

TEST(Durability, CleanStopAcknowledgesOnlyWhatIsStoredAndKeepsIt) {
  TempDir data;
  std::map<std::string, std::uint64_t> acked;
  {
    NodeProcess node(data.path());
    ClientOptions o = options_for(node);
    o.attempt_timeout = Millis(300);
    o.max_attempts = 2;
    Client c(o);
    make_room(c, "calm", {"ann"});
    bool stopped = false;
    int status = -1;
    for (int i = 0; i < 2000; ++i) {
      std::string cmid = "calm-" + std::to_string(i);
      c.publish_async("calm", "ann", "x", [&, cmid](const Result<transport::PublishOk>& ack) {
        if (ack) acked[cmid] = ack->seq;
        if (acked.size() == 200 && !stopped) {
          stopped = true;
          status = node.stop();  // SIGTERM with publishes in flight
        }
      }, cmid);
    }
    c.wait_all(Millis(120'000));
    ASSERT_TRUE(stopped);
    EXPECT_EQ(status, 0);
    EXPECT_NE(node.output().find("switchboard stopped"), std::string::npos);
  }
  NodeProcess node(data.path());
  Client c(options_for(node));
  auto stored = full_history(c, "calm");
  std::map<std::string, std::uint64_t> by_cmid;
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq, i + 1);
    by_cmid[stored[i].client_msg_id] = stored[i].seq;
  }
  for (const auto& [cmid, seq] : acked) {
    ASSERT_TRUE(by_cmid.count(cmid)) << "acknowledged but lost: " << cmid;
    EXPECT_EQ(by_cmid[cmid], seq);
  }
}

TEST(Durability, FullStoreRefusesWritesClearlyAndKeepsWhatItHas) {
  TempDir data;
  std::vector<std::uint64_t> acked;
  const std::string body(60 * 1024, 'f');
  {
    NodeProcess node(data.path(), {"--max-store-mb", "2", "--durability", "nosync"});
    Client c(options_for(node));
    make_room(c, "full", {"ann"});
    const Error refused = switchboard::testing::publish_until_refused(c, "full", "ann", body, 200, acked);
    ASSERT_EQ(refused.code, errc::storage_full) << refused.message;
    EXPECT_FALSE(refused.message.empty());
    ASSERT_FALSE(acked.empty());
    // Still serving: reads work, and so does a write that fits.
    auto last = c.last_seq("full");
    ASSERT_TRUE(last);
    EXPECT_EQ(*last, acked.back());
    auto page = c.history("full", {1, {}, {}});
    ASSERT_TRUE(page);
    EXPECT_EQ(page->messages.at(0).seq, acked.back());
    EXPECT_EQ(node.stop(), 0);
  }
  NodeProcess node(data.path(), {"--max-store-mb", "8", "--durability", "nosync"});
  Client c(options_for(node));
  auto stored = full_history(c, "full");
  ASSERT_EQ(stored.size(), acked.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq, i + 1);
    EXPECT_EQ(stored[i].body, body + std::to_string(i));
  }
  // With room to grow, the store grows and the next seq follows without a gap.
  auto ack = c.publish("full", "ann", "after growing");
  ASSERT_TRUE(ack) << ack.error().message;
  EXPECT_EQ(ack->seq, acked.size() + 1);
}

TEST(Delivery, ReadHistoryHandsOverEveryMessageOnceInOrderWhileItAsksPagesAhead) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "off", "--metrics", "off"});
  Client c(options_for(node));
  ASSERT_TRUE(c.create_room("long", "ann"));
  ASSERT_TRUE(c.create_room("wide", "ann"));
  for (int i = 1; i <= 2500; ++i) c.publish_async("long", "ann", "message " + std::to_string(i), [](const auto&) {});
  // 8 KiB bodies: a page of 1000 would pass the node's 4 MiB a page, so it cuts them short.
  for (int i = 1; i <= 1200; ++i) c.publish_async("wide", "ann", std::string(8192, 'a' + i % 26), [](const auto&) {});
  ASSERT_TRUE(c.wait_all());

  auto read = [&](const std::string& room, std::uint64_t after, std::uint32_t page, std::size_t stop_after_pages,
                  std::vector<std::uint64_t>& seqs, std::vector<std::size_t>& sizes) {
    return c.read_history(
        room, after,
        [&](const transport::HistoryPage& p) {
          for (const auto& m : p.messages) {
            seqs.push_back(m.seq);
            // Read in place, every field is still the message's own.
            if (room == "long") EXPECT_EQ(m.body, "message " + std::to_string(m.seq));
            else EXPECT_EQ(m.body, std::string(8192, static_cast<char>('a' + m.seq % 26)));
            EXPECT_EQ(m.room, room);
            EXPECT_EQ(m.user, "ann");
            EXPECT_EQ(m.client_msg_id.size(), 32u);
          }
          sizes.push_back(p.messages.size());
          return sizes.size() < stop_after_pages;
        },
        page);
  };
  auto range = [](std::uint64_t first, std::uint64_t last) {
    std::vector<std::uint64_t> v;
    for (auto s = first; s <= last; ++s) v.push_back(s);
    return v;
  };

  std::vector<std::uint64_t> seqs;
  std::vector<std::size_t> sizes;
  auto last = read("long", 0, 1000, 100, seqs, sizes);
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(*last, 2500u);
  EXPECT_EQ(seqs, range(1, 2500));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1000, 1000, 500}));

  seqs.clear(), sizes.clear();
  last = read("long", 1200, 300, 100, seqs, sizes);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2500u);
  EXPECT_EQ(seqs, range(1201, 2500));

  // Pages the node cuts short are asked again from where they ended: nothing skipped.
  seqs.clear(), sizes.clear();
  last = read("wide", 0, 1000, 100, seqs, sizes);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1200u);
  EXPECT_EQ(seqs, range(1, 1200));
  EXPECT_GE(sizes.size(), 3u);
  EXPECT_LT(sizes.front(), 1000u);

  // Stopped after one page: the pages asked ahead are dropped when they come, and the
  // client's next request gets its own answer.
  seqs.clear(), sizes.clear();
  last = read("long", 0, 1000, 1, seqs, sizes);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1000u);
  EXPECT_EQ(seqs, range(1, 1000));
  auto page = c.history("long", HistoryQuery{10, std::nullopt, 2490});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 10u);
  EXPECT_EQ(page->messages.front().seq, 2491u);

  // A page read in place holds what history() gives, and its views outlive the call
  // and any copy of the page.
  std::optional<transport::HistoryPage> kept;
  {
    auto in_place = c.history_page("long", HistoryQuery{10, std::nullopt, 2490});
    ASSERT_TRUE(in_place) << in_place.error().message;
    kept = *in_place;
  }
  ASSERT_EQ(kept->messages.size(), page->messages.size());
  for (std::size_t i = 0; i < page->messages.size(); ++i) EXPECT_EQ(kept->messages[i].to_message(), page->messages[i]);
  EXPECT_EQ(kept->more, page->more);
  auto nowhere = c.history_page("nowhere");
  ASSERT_FALSE(nowhere);
  EXPECT_EQ(nowhere.error().code, errc::no_such_room);

  auto missing = c.read_history("nowhere", 0, [](const transport::HistoryPage&) { return true; });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::no_such_room);
}
