// Floods against a real node: a subscriber that never reads, a client that sends
// requests and never reads the replies, and hundreds of idle connections, all at once.
// The node keeps answering a well-behaved client quickly, and its memory stays bounded
// (its anonymous memory, RssAnon: the LMDB map is a file mapping and grows with the
// history, as it should).
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::options_for;
using Clock = std::chrono::steady_clock;

namespace {

/// RssAnon of process `pid`, in KiB (-1 if it cannot be read).
long rss_anon_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
  return -1;
}

}  // namespace

TEST(Floods, ANeverReadingSubscriberARequestFloodAndManyConnectionsLeaveOthersServedAndMemoryBounded) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "off", "--limit", "pub_sndhwm=1000", "--limit", "reply_hwm=1000"});
  client::ClientOptions o = options_for(node);
  client::Client setup(o);
  ASSERT_TRUE(setup.create_room("flood", "ann"));
  ASSERT_TRUE(setup.create_room("calm", "bob"));
  const long before_kib = rss_anon_kib(node.pid());
  ASSERT_GT(before_kib, 0);

  zmq::context_t context;
  // A subscriber that never reads, with a tiny receive queue: the node's PUB queue for
  // it fills, and past its high-water mark the node drops for it alone.
  zmq::socket_t stuck(context, zmq::socket_type::sub);
  stuck.set(zmq::sockopt::rcvhwm, 10);
  stuck.set(zmq::sockopt::rcvbuf, 4096);
  stuck.set(zmq::sockopt::linger, 0);
  client::connect_socket(stuck, o, node.pub_endpoint());
  stuck.set(zmq::sockopt::subscribe, transport::room_topic("flood"));
  // A client that sends pings and never reads a reply.
  zmq::socket_t deaf(context, zmq::socket_type::dealer);
  deaf.set(zmq::sockopt::linger, 0);
  deaf.set(zmq::sockopt::rcvhwm, 10);
  client::connect_socket(deaf, o, node.client_endpoint());
  // Idle connections.
  std::vector<zmq::socket_t> idle;
  for (int i = 0; i < 200; ++i) {
    idle.emplace_back(context, zmq::socket_type::dealer);
    idle.back().set(zmq::sockopt::linger, 0);
    client::connect_socket(idle.back(), o, node.client_endpoint());
  }

  // The flood: 40,000 publishes of 4 KiB (160 MiB) to the room the stuck subscriber
  // follows, and 100,000 unread pings.
  std::atomic<bool> flooding{true};
  std::thread publisher([&] {
    client::Client c(o);
    const std::string body(4096, 'x');
    for (int i = 0; i < 40'000; ++i) c.publish_async("flood", "ann", body, [](const auto&) {});
    c.wait_all(client::Millis(300'000));
    flooding = false;
  });
  std::thread pinger([&] {
    const std::string ping = transport::encode_request({1, transport::Ping{}});
    for (int i = 0; i < 100'000; ++i) (void)deaf.send(zmq::buffer(ping), zmq::send_flags::dontwait);
  });

  // Meanwhile bob publishes and reads history in his own room: each answered quickly.
  client::Client bob(o);
  Clock::duration slowest{};
  long peak_kib = before_kib;
  int rounds = 0;
  for (; flooding || rounds < 20; ++rounds) {
    const auto start = Clock::now();
    auto ack = bob.publish("calm", "bob", "still here " + std::to_string(rounds));
    ASSERT_TRUE(ack) << ack.error().message;
    EXPECT_EQ(ack->seq, static_cast<std::uint64_t>(rounds + 1));
    slowest = std::max(slowest, Clock::now() - start);
    peak_kib = std::max(peak_kib, rss_anon_kib(node.pid()));
  }
  publisher.join();
  pinger.join();
  peak_kib = std::max(peak_kib, rss_anon_kib(node.pid()));
  std::cout << "floods: " << rounds << " publishes of bob during the flood, slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms; node RssAnon "
            << before_kib / 1024 << " MiB before, peak " << peak_kib / 1024 << " MiB" << std::endl;
  EXPECT_LT(slowest, std::chrono::seconds(2)) << "bob waited behind the flood";
  // 160 MiB went to a subscriber that read nothing, and 100,000 replies to a client
  // that read none. The node holds at most its high-water marks' worth for them (here
  // pub_sndhwm = reply_hwm = 1,000 messages: about 4 MiB), plus its own working memory
  // (group commits of up to 8 MiB, encoded and decoded; measured at 45-55 MiB on the
  // 2-core build machine), never what was published: that would be 160 MiB.
  EXPECT_LT(peak_kib - before_kib, 96 * 1024) << "the node kept what its stuck peers did not read";

  auto history = switchboard::testing::full_history(setup, "flood");
  EXPECT_EQ(history.size(), 40'000u) << "every flood publish stored, though one subscriber read none";
  EXPECT_EQ(node.stop(), 0);
}
