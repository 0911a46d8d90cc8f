// The actor runtime with real sockets: the same chat and persistence actors wired
// over inproc and over tcp, timers, drain points, clean stop, two nodes in a process.
#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

#include "node_process.hpp"
#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/node.hpp"
#include "switchboard/actors/persistence.hpp"
#include "switchboard/actors/runtime.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using switchboard::testing::TempDir;

namespace {

/// Replies "echo:<payload>"; arms a timer on "timer"; records drain points.
class EchoActor final : public Actor {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int drains = 0;
    int drains_at_timer = -1;  ///< drains counted when the timer fired
    int timers = 0;
    bool stop_seen = false;
  };
  explicit EchoActor(Shared& shared) : shared_(shared) {}

  void on_message(const Inbound& in, const Now& now, Effects& out) override {
    std::string payload(in.frames.at(0));
    if (payload == "timer") out.start_timer(7, now.steady + std::chrono::milliseconds(20));
    out.reply(std::string(in.sender), "echo:" + payload);
  }
  void on_drained(const Now&, Effects&) override {
    std::lock_guard lock(shared_.mu);
    ++shared_.drains;
    shared_.cv.notify_all();
  }
  void on_timer(std::uint64_t id, const Now&, Effects& out) override {
    EXPECT_EQ(id, 7u);
    out.publish("tick", "fired");
    std::lock_guard lock(shared_.mu);
    ++shared_.timers;
    shared_.drains_at_timer = shared_.drains;
    shared_.cv.notify_all();
  }
  void on_stop(const Now&, Effects&) override { shared_.stop_seen = true; }

 private:
  Shared& shared_;
};

/// Records what it handles; "gate" waits until the test opens it; names starting with
/// "read" are taken ahead.
class OrderActor final : public Actor {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false, waiting = false;
    std::vector<std::string> handled;
  };
  explicit OrderActor(Shared& shared) : shared_(shared) {}
  bool ahead(const Inbound& in) const override { return in.frames.at(0).starts_with("read"); }
  void on_message(const Inbound& in, const Now&, Effects& out) override {
    std::string payload(in.frames.at(0));
    std::unique_lock lock(shared_.mu);
    if (payload == "gate") {
      shared_.waiting = true;
      shared_.cv.notify_all();
      shared_.cv.wait(lock, [&] { return shared_.open; });
    } else {
      shared_.handled.push_back(payload);
      shared_.cv.notify_all();
    }
    out.reply(std::string(in.sender), payload);
  }

 private:
  Shared& shared_;
};

std::string recv_string(zmq::socket_t& s) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 0) return "<timeout>";
  zmq::message_t m;
  (void)s.recv(m);
  return m.to_string();
}

}  // namespace

TEST(Runtime, RepliesFiresTimersAndStopsCleanly) {
  zmq::context_t context;
  EchoActor::Shared shared;
  auto thread = std::make_unique<ActorThread>(
      context, ActorSockets{"echo", {"inproc://echo"}, {"inproc://echo-pub"}, {}, {}},
      std::make_unique<EchoActor>(shared));
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "tick");
  sub.connect(thread->publish_endpoints().at(0));
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.connect("inproc://echo");

  dealer.send(zmq::str_buffer("hello"));
  EXPECT_EQ(recv_string(dealer), "echo:hello");
  dealer.send(zmq::str_buffer("timer"));
  EXPECT_EQ(recv_string(dealer), "echo:timer");
  {
    // Messages read in one poll round share one drain point; the timer's round has its own.
    std::unique_lock lock(shared.mu);
    ASSERT_TRUE(shared.cv.wait_for(lock, std::chrono::seconds(5), [&] { return shared.timers == 1; }));
    EXPECT_GE(shared.drains_at_timer, 1) << "the messages' round had a drain point";
    ASSERT_TRUE(shared.cv.wait_for(lock, std::chrono::seconds(5),
                                   [&] { return shared.drains > shared.drains_at_timer; }))
        << "the timer's round had no drain point";
  }
  EXPECT_EQ(recv_string(sub), "tick");
  EXPECT_EQ(recv_string(sub), "fired");
  thread->stop();
  EXPECT_TRUE(shared.stop_seen);
  EXPECT_EQ(thread->counters().messages.load(), 2u);
  EXPECT_EQ(thread->counters().handler_failures.load(), 0u);
}

TEST(Runtime, MessagesTheActorTakesAheadPassThoseReadWithThemAndTheRestKeepTheirOrder) {
  zmq::context_t context;
  OrderActor::Shared shared;
  auto thread = std::make_unique<ActorThread>(context, ActorSockets{"order", {"inproc://order"}, {}, {}, {}},
                                              std::make_unique<OrderActor>(shared));
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.connect("inproc://order");
  // While the actor waits in "gate", the rest queue up and are read in one burst.
  dealer.send(zmq::str_buffer("gate"));
  {
    std::unique_lock lock(shared.mu);
    ASSERT_TRUE(shared.cv.wait_for(lock, std::chrono::seconds(5), [&] { return shared.waiting; }));
  }
  for (const char* m : {"write-1", "read-1", "write-2", "read-2", "write-3"}) dealer.send(zmq::buffer(std::string(m)));
  {
    std::lock_guard lock(shared.mu);
    shared.open = true;
  }
  shared.cv.notify_all();
  std::unique_lock lock(shared.mu);
  ASSERT_TRUE(shared.cv.wait_for(lock, std::chrono::seconds(5), [&] { return shared.handled.size() == 5; }));
  EXPECT_EQ(shared.handled, (std::vector<std::string>{"read-1", "read-2", "write-1", "write-2", "write-3"}));
  lock.unlock();
  thread->stop();
}

TEST(Runtime, BindFailureIsReportedByTheConstructor) {
  zmq::context_t context;
  EchoActor::Shared shared;
  ActorThread first(context, ActorSockets{"a", {"tcp://127.0.0.1:*"}, {}, {}, {}},
                    std::make_unique<EchoActor>(shared));
  std::string taken = first.mailbox_endpoints().at(0);
  EXPECT_THROW(ActorThread(context, ActorSockets{"b", {taken}, {}, {}, {}}, std::make_unique<EchoActor>(shared)),
               zmq::error_t);
}

/// A persistence actor on a fresh nosync store in `dir`, and what chat needs to start.
struct StartedPersistence {
  std::unique_ptr<ActorThread> thread;
  persistence::Snapshot snapshot;
};
StartedPersistence start_persistence(zmq::context_t& context, const TempDir& dir, const std::string& mailbox) {
  persistence::StoreOptions store_options;
  store_options.dir = dir.path();
  store_options.durability = persistence::Durability::nosync;
  auto store = persistence::HistoryStore::open(store_options);
  EXPECT_TRUE(store);
  auto snapshot = store->snapshot(0);
  EXPECT_TRUE(snapshot);
  return {std::make_unique<ActorThread>(context, ActorSockets{"persistence", {mailbox}, {}, {}, {}},
                                        std::make_unique<Persistence>(std::move(*store), PersistenceOptions{})),
          std::move(*snapshot)};
}

class Wiring : public ::testing::TestWithParam<std::string> {};

// Chat and persistence are the same classes whichever transport joins them.
TEST_P(Wiring, ChatAndPersistenceServeOverEitherTransport) {
  TempDir data;
  zmq::context_t context;
  const bool tcp = GetParam() == "tcp";
  auto [persistence_thread, snapshot] = start_persistence(context, data, tcp ? "tcp://127.0.0.1:*" : "inproc://p");
  auto chat_thread = std::make_unique<ActorThread>(
      context,
      ActorSockets{"chat",
                   {tcp ? "tcp://127.0.0.1:*" : "inproc://c"},
                   {tcp ? "tcp://127.0.0.1:*" : "inproc://c-pub"},
                   {{"persistence", persistence_thread->mailbox_endpoints().at(0)}},
                   {}},
      std::make_unique<Chat>(ChatOptions{}, snapshot));

  client::ClientOptions o;
  o.endpoint = chat_thread->mailbox_endpoints().at(0);
  o.context = &context;
  client::Client c(o);
  ASSERT_TRUE(c.create_room("wired", "ann"));
  ASSERT_TRUE(c.subscribe("wired", 0));
  for (int i = 1; i <= 20; ++i) {
    auto ack = c.publish("wired", "ann", "m" + std::to_string(i));
    ASSERT_TRUE(ack) << ack.error().message;
    EXPECT_EQ(ack->seq, static_cast<std::uint64_t>(i));
  }
  for (int i = 1; i <= 20; ++i) {
    auto m = c.next(std::chrono::seconds(5));
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->seq, static_cast<std::uint64_t>(i));
  }
  auto page = c.history("wired", {5, {}, {}});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 5u);
  EXPECT_EQ(page->messages.front().seq, 16u);
  EXPECT_TRUE(page->more);
  chat_thread->stop();
  persistence_thread->stop();
}

INSTANTIATE_TEST_SUITE_P(Transports, Wiring, ::testing::Values("inproc", "tcp"));

TEST(Node, TwoNodesRunInOneProcessIndependently) {
  TempDir a_dir, b_dir;
  // Each with CURVE: a ZAP handler per node, in the node's own context.
  const auto client_keys = transport::generate_curve_keypair();
  auto make = [&](const TempDir& dir) {
    NodeOptions o;
    CurveSetup curve;
    curve.own = transport::generate_curve_keypair();
    curve.admitted.admit(client_keys.public_key, "test client");
    o.curve = curve;
    o.data_dir = dir.path();
    o.client_endpoints = {"tcp://127.0.0.1:*"};
    o.pub_endpoints = {"tcp://127.0.0.1:*"};
    o.presence_endpoints = {"tcp://127.0.0.1:*"};
    o.presence_pub_endpoints = {"tcp://127.0.0.1:*"};
    o.durability = persistence::Durability::nosync;
    return Node::start(o);
  };
  auto a = make(a_dir);
  auto b = make(b_dir);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  for (auto* node : {&*a, &*b}) {
    client::ClientOptions o;
    o.endpoint = (*node)->client_endpoints().at(0);
    o.curve = transport::CurveClient{client_keys, (*node)->options().curve->own.public_key};
    client::Client c(o);
    ASSERT_TRUE(c.create_room("same-name", "ann"));
    auto ack = c.publish("same-name", "ann", "only here");
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->seq, 1u) << "each node has its own rooms and seqs";
  }
}

TEST(Node, StartFailsWithAClearErrorWhenTheDataDirectoryIsUnusable) {
  TempDir dir;
  auto file = dir.path() / "not-a-directory";
  { std::ofstream(file) << "x"; }
  NodeOptions o;
  o.data_dir = file;
  o.client_endpoints = {"tcp://127.0.0.1:*"};
  o.pub_endpoints = {"tcp://127.0.0.1:*"};
  o.presence_endpoints = {"tcp://127.0.0.1:*"};
  o.presence_pub_endpoints = {"tcp://127.0.0.1:*"};
  auto node = Node::start(o);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code, errc::unavailable);
  EXPECT_NE(node.error().message.find("not-a-directory"), std::string::npos) << node.error().message;
}

// Presence never blocks chat: chat told to notify a presence actor that does not
// exist (nothing bound, nothing reading) still stores, publishes and acks everything.
TEST(Wiring, ADeadPresenceActorDoesNotDelayChat) {
  TempDir data;
  zmq::context_t context;
  auto [persistence_thread, snapshot] = start_persistence(context, data, "inproc://p");
  ChatOptions chat_options;
  chat_options.presence_actor = "presence";
  auto chat_thread = std::make_unique<ActorThread>(
      context,
      ActorSockets{"chat", {"inproc://c"}, {"inproc://c-pub"},
                   {{"persistence", "inproc://p"}, {"presence", "inproc://nobody-home"}}, {}},
      std::make_unique<Chat>(chat_options, snapshot));

  client::ClientOptions o;
  o.endpoint = "inproc://c";
  o.context = &context;
  client::Client c(o);
  ASSERT_TRUE(c.create_room("busy", "ann"));
  ASSERT_TRUE(c.subscribe("busy", 0));
  // Every join is a membership change chat hands to (dead) presence.
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(c.join("busy", "user-" + std::to_string(i)));
  for (int i = 1; i <= 100; ++i) {
    auto ack = c.publish("busy", "ann", "m" + std::to_string(i));
    ASSERT_TRUE(ack) << ack.error().message;
  }
  for (int i = 1; i <= 100; ++i) {
    auto m = c.next(std::chrono::seconds(5));
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->seq, static_cast<std::uint64_t>(i));
  }
  chat_thread->stop();
  persistence_thread->stop();
}

namespace {

/// On "go": sends 50 messages of 1 MiB to its remote peer "far"; counts what comes back.
class Flooder final : public Actor {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int undeliverable = 0, queue_full = 0;
  };
  explicit Flooder(Shared& shared) : shared_(shared) {}

  void on_message(const Inbound& in, const Now&, Effects& out) override {
    if (in.via == Inbound::Via::mailbox) {
      for (int i = 0; i < 50; ++i) out.send("far", std::string(1 << 20, 'x'));
      out.reply(std::string(in.sender), "sent");
      return;
    }
    std::lock_guard lock(shared_.mu);
    if (in.via == Inbound::Via::undeliverable) ++shared_.undeliverable;
    if (in.via == Inbound::Via::queue_full) ++shared_.queue_full;
    shared_.cv.notify_all();
  }

 private:
  Shared& shared_;
};

/// Runs a Flooder whose "far" peer is `far`, and sends it "go" until `enough` says
/// so (or 20 s pass).
void flood(const std::string& far, Flooder::Shared& shared, const std::function<bool()>& enough) {
  zmq::context_t context;
  ActorSockets sockets{"flooder", {"inproc://flooder"}, {}, {}, transport::Limits{}};
  sockets.limits.reply_hwm = 4;
  sockets.remote_peers["far"] = far;
  ActorThread thread(context, std::move(sockets), std::make_unique<Flooder>(shared));
  zmq::socket_t client(context, zmq::socket_type::dealer);
  client.connect("inproc://flooder");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    client.send(zmq::str_buffer("go"));
    ASSERT_EQ(recv_string(client), "sent");
    std::unique_lock lock(shared.mu);
    if (shared.cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return enough(); })) break;
  }
  thread.stop();
}

}  // namespace

TEST(Runtime, ARemotePeerThatIsConnectedButNotReadingIsQueueFullNotUndeliverable) {
  zmq::context_t context;
  zmq::socket_t far(context, zmq::socket_type::router);
  far.set(zmq::sockopt::rcvhwm, 1);  // and never read: everything backs up to the sender
  far.bind("tcp://127.0.0.1:*");
  Flooder::Shared shared;
  flood(far.get(zmq::sockopt::last_endpoint), shared, [&] { return shared.queue_full > 0; });
  EXPECT_GT(shared.queue_full, 0) << "the connection is up: a full queue is not a lost peer";
}

TEST(Runtime, ARemotePeerWithNoConnectionIsUndeliverable) {
  Flooder::Shared shared;
  const std::string nobody = "tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port());
  flood(nobody, shared, [&] { return shared.undeliverable >= 50; });
  EXPECT_GE(shared.undeliverable, 50);
  EXPECT_EQ(shared.queue_full, 0);
}
