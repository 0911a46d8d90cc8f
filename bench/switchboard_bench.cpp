// Switchboard against plain ZeroMQ, plain LMDB, Redis and NATS JetStream, in one run, on
// one machine.
//
// Every Switchboard figure is printed beside the baselines measured in the same run, with
// the ratio Switchboard/baseline and the target for it. Results also go to a JSON
// file (--json PATH).
//
//   durable publish        Switchboard: N Clients (1, 4, 16), each on its own thread,
//                          pipelining 100-byte or 1 KiB publishes (window 1000) into an
//                          in-process Node over tcp loopback, acked only once stored
//                          (sync / nosync). Baselines: N DEALERs pipelining to a ROUTER
//                          that acks each; plain LMDB appends in batches of the size a
//                          group commit can reach; redis-server (XADD + PUBLISH per
//                          message, pipelined) and nats-server (JetStream async publish,
//                          file storage), each at the durability that matches.
//   publish->delivery      Switchboard: one Client publishes one message at a time
//                          (publish() waits for the ack), another Client, subscribed on
//                          its own thread, receives it: before publish() to after next()
//                          returns it. At idle, and with another Client publishing at half
//                          of the 1-publisher peak. Baseline: DEALER->ROUTER echo round
//                          trip, at idle and with a DEALER loading the ROUTER at half of
//                          its own peak; and one plain LMDB commit (the storage floor).
//   fan-out                one room, 1 / 100 / 1000 subscribed Clients: deliveries/s.
//                          Baseline: one PUB, as many SUBs, received the same way.
//   history replay         the newest 10k messages of a room, in pages, and paging
//                          through all of a room of 1M (100k with --quick) with
//                          Client::read_history (pages asked ahead). Baseline:
//                          LMDB cursor reads of the same store file. And one page (the
//                          newest 100 of a room) read at a time, at idle and while 16
//                          publishers pipeline sync publishes: the loaded p50 against the
//                          idle one.
//   idle rooms             one Client following 10k rooms (1k with --quick) where nothing
//                          is published: the requests it sends and the heads events it
//                          receives per second once settled. Baseline: what polling
//                          every room every 250 ms (the client until issue 22) would send.
//   CURVE on against off   durable publish nosync (1 and 16 publishers, 100 B) and idle
//                          publish->delivery p50/p99, each run on a node with CURVE on
//                          (a ZAP handler, an admitted client key) and on one without;
//                          the ratio is on/off. Every other Switchboard row runs without
//                          CURVE, as the raw ZeroMQ baselines and the peers do.
//
// Usage: switchboard_bench [--quick] [--json PATH] [--dir PATH] [--window N] [--no-peers] [--only NAME]
//                          [--publishers N,..] [--bodies B,..] [--durability D] [--subscribers N,..]
//                          [--switchboard-only] [--metrics]
#include <unistd.h>

#include <algorithm>
#include <latch>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <malloc.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <deque>
#include <unordered_map>

#include "switchboard/actors/chat/dedup_table.hpp"
#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "bench_nodes.hpp"
#include "suite.hpp"

namespace {

namespace sb = switchboard;
using namespace sb::bench;

// ---- Switchboard ----------------------------------------------------------------------

/// A Node on tcp loopback ports of its own, with its data in a fresh directory (or
/// `data_dir`, left in place) that is removed afterwards.
class BenchNode {
 public:
  /// `curve`: CURVE on its tcp endpoints, with a client keypair of its own admitted
  /// (off: plain tcp, as the raw ZeroMQ baselines and the peers run). `sealed`: message
  /// bodies encrypted at rest with a fresh store key.
  BenchNode(const Config& config, Durability durability, std::optional<std::filesystem::path> data_dir = {},
            bool curve = false, bool sealed = false)
      : dir_(config.data_base, "switchboard-bench") {
    sb::actors::NodeOptions options;
    if (sealed) options.store_key = sb::persistence::StoreKey::generate();
    if (curve) {
      sb::actors::CurveSetup setup;
      setup.own = sb::transport::generate_curve_keypair();
      client_curve_ = sb::transport::CurveClient{sb::transport::generate_curve_keypair(), setup.own.public_key};
      setup.admitted.admit(client_curve_->own.public_key, "bench client");
      options.curve = std::move(setup);
    }
    options.name = "bench";
    options.data_dir = data_dir ? *data_dir : dir_.path() / "data";
    options.client_endpoints = {"tcp://127.0.0.1:*"};
    options.pub_endpoints = {"tcp://127.0.0.1:*"};
    options.durability = durability;
    if (config.metrics) options.metrics = sb::actors::MetricsOptions{"127.0.0.1", 0, true};
    auto node = sb::actors::Node::start(options);
    if (!node) throw std::runtime_error("Node::start: " + node.error().message);
    node_ = std::move(*node);
    for (const auto& e : node_->client_endpoints())
      if (e.rfind("tcp://", 0) == 0) endpoint_ = e;
  }
  ~BenchNode() { stop(); }
  /// Stops the actors and closes the store (the directory goes with the object).
  void stop() { node_.reset(); }
  sb::client::ClientOptions client_options(std::size_t max_in_flight = 1024) const {
    sb::client::ClientOptions o;
    o.endpoint = endpoint_;
    o.max_in_flight = max_in_flight;
    o.curve = client_curve_;
    return o;
  }

 private:
  std::optional<sb::transport::CurveClient> client_curve_;
  TempDir dir_;
  std::unique_ptr<sb::actors::Node> node_;
  std::string endpoint_;
};

Throughput switchboard_throughput(const Config& config, Durability durability, int publishers, std::size_t bytes,
                                  bool curve = false, bool sealed = false) {
  BenchNode node(config, durability, {}, curve, sealed);
  const std::string body(bytes, 'x');
  struct Publisher {
    std::unique_ptr<sb::client::Client> client;
    std::string room, user;
    std::uint64_t acked = 0, errors = 0, duplicates = 0;
    std::string error;
  };
  std::vector<Publisher> pubs(static_cast<std::size_t>(publishers));
  Throughput t;
  t.connections = publishers;
  t.seconds = run_threads(
      publishers, config.throughput_run,
      [&](int i) {
        Publisher& p = pubs[static_cast<std::size_t>(i)];
        p.client = std::make_unique<sb::client::Client>(node.client_options(config.window));
        // A room per publisher: chat rooms are independent, as in a chat with many rooms.
        p.room = "bench-" + std::to_string(i);
        p.user = "user-" + std::to_string(i);
        if (auto r = p.client->create_room(p.room, p.user); !r) p.error = "create_room: " + r.error().message;
        for (int k = 0; k < config.throughput_warmup && p.error.empty(); ++k)
          p.client->publish_async(p.room, p.user, body, [](const auto&) {});
        p.client->wait_all();
      },
      [&](int i, SteadyClock::time_point deadline) {
        Publisher& p = pubs[static_cast<std::size_t>(i)];
        if (!p.error.empty()) return;
        auto done = [&p](const sb::Result<sb::transport::PublishOk>& r) {
          if (r) {
            ++p.acked;
            if (r->duplicate) ++p.duplicates;
          } else {
            ++p.errors;
            p.error = r.error().message;
          }
        };
        while (SteadyClock::now() < deadline) p.client->publish_async(p.room, p.user, body, done);
        if (!p.client->wait_all(std::chrono::seconds(60))) p.error = "publishes still unacked 60 s after the run";
      });
  for (auto& p : pubs) {
    t.acked += p.acked;
    t.errors += p.errors;
    t.duplicates += p.duplicates;
    if (!p.error.empty()) t.error = p.error;
  }
  pubs.clear();  // clients close before the node stops
  return t;
}

/// CPU time spent per acknowledged publish: by the node (a `switchboard run` process of
/// its own, nosync, CURVE off) and by the clients (this process), over every ack.
struct CpuPerAck {
  std::uint64_t acked = 0;
  double node_us = 0, client_us = 0;  // per ack
  double seconds = 0;
  std::string error;
};

double process_cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces): state is field 3; utime 14, stime 15.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

CpuPerAck cpu_per_ack(const Config& config, int publishers) {
  CpuPerAck result;
  TempDir dir(config.data_base, "switchboard-bench-cpu");
  int out[2];
  if (pipe(out) != 0) return {0, 0, 0, 0, "pipe failed"};
  const std::string data = (dir.path() / "data").string();
  std::vector<std::string> args = {SWITCHBOARD_BINARY, "run",   "--data",   data,  "--listen", "tcp://127.0.0.1:*",
                                   "--durability",     "nosync", "--curve", "off", "--bridge", "off",
                                   "--metrics",        "off"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    return {0, 0, 0, 0, "cannot start " + std::string(SWITCHBOARD_BINARY)};
  }
  std::string line;
  for (char c; line.find('\n') == std::string::npos && read(out[0], &c, 1) == 1;) line += c;
  close(out[0]);
  const auto at = line.find(" client=");
  std::string endpoint = at == std::string::npos ? "" : line.substr(at + 8, line.find(' ', at + 8) - at - 8);
  auto stop = [&] {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  };
  if (endpoint.empty()) {
    stop();
    return {0, 0, 0, 0, "the node printed no ready line: " + line};
  }
  const std::string body(config.payload_bytes, 'x');
  std::vector<std::unique_ptr<sb::client::Client>> clients;
  std::vector<std::uint64_t> acked(static_cast<std::size_t>(publishers), 0);
  const double node_before = process_cpu_seconds(pid), self_before = self_cpu_seconds();
  result.seconds = run_threads(
      publishers, config.throughput_run,
      [&](int i) {
        sb::client::ClientOptions o;
        o.endpoint = endpoint;
        o.max_in_flight = config.window;
        sb::client::Client c(o);
        (void)c.create_room("cpu-" + std::to_string(i), "user-" + std::to_string(i));
      },
      [&](int i, SteadyClock::time_point deadline) {
        sb::client::ClientOptions o;
        o.endpoint = endpoint;
        o.max_in_flight = config.window;
        sb::client::Client c(o);
        const std::string room = "cpu-" + std::to_string(i), user = "user-" + std::to_string(i);
        auto& count = acked[static_cast<std::size_t>(i)];
        while (SteadyClock::now() < deadline)
          c.publish_async(room, user, body, [&count](const sb::Result<sb::transport::PublishOk>& r) { count += r ? 1 : 0; });
        c.wait_all(std::chrono::seconds(60));
      });
  const double node_cpu = process_cpu_seconds(pid) - node_before, self_cpu = self_cpu_seconds() - self_before;
  stop();
  for (auto n : acked) result.acked += n;
  if (result.acked == 0) return {0, 0, 0, result.seconds, "no publish was acknowledged"};
  result.node_us = node_cpu * 1e6 / static_cast<double>(result.acked);
  result.client_us = self_cpu * 1e6 / static_cast<double>(result.acked);
  return result;
}

/// What the retry window costs per remembered publish: chat's DedupTable against the
/// structure chat kept before (an unordered_map of string keys, each with its
/// Publication, and a deque giving the expiry order), each filled with `entries`
/// client-library ids (32 hex digits) over 100 rooms and 16 users; heap in use measured
/// with mallinfo2 around each.
std::pair<double, double> dedup_bytes_per_entry(std::size_t entries) {
  auto heap = [] { return static_cast<double>(mallinfo2().uordblks) + static_cast<double>(mallinfo2().hblkhd); };
  auto id = [](std::size_t n) { return sb::client::Client::new_client_msg_id() + std::to_string(n % 10); };
  std::vector<std::string> ids;
  ids.reserve(entries);
  for (std::size_t i = 0; i < entries; ++i) ids.push_back(id(i).substr(0, 32));
  double table_bytes = 0, map_bytes = 0;
  {
    const double before = heap();
    sb::actors::DedupTable table;
    for (std::size_t i = 0; i < entries; ++i)
      table.insert({static_cast<std::uint32_t>(i % 100), static_cast<std::uint32_t>(i % 16), ids[i]}, i, 1'700'000'000'000 + i);
    table_bytes = (heap() - before) / static_cast<double>(table.size());
  }
  {
    struct Caller { std::string peer; std::uint64_t request_id = 0, corr = 0; bool node = false; SteadyClock::time_point at; };
    struct Publication { int state = 0; std::uint64_t seq = 0, ts_ms = 0; std::vector<Caller> waiting; };
    const double before = heap();
    std::unordered_map<std::string, Publication> map;
    std::deque<std::pair<std::uint64_t, const std::string*>> order;
    for (std::size_t i = 0; i < entries; ++i) {
      auto [it, fresh] = map.try_emplace("room-" + std::to_string(i % 100) + '\0' + "user-" + std::to_string(i % 16) +
                                         '\0' + ids[i]);
      it->second.seq = i;
      order.emplace_back(i, &it->first);
    }
    map_bytes = (heap() - before) / static_cast<double>(map.size());
  }
  return {table_bytes, map_bytes};
}

struct DeliveryLatency {
  LatencySummary latency;
  sb::client::SubscriptionStats stats;
  double seconds = 0;
  double load_per_s = 0;  // the background load actually sent, if any
  std::string error;
};

DeliveryLatency switchboard_delivery(const Config& config, Durability durability, double load_per_s,
                                     bool curve = false) {
  BenchNode node(config, durability, {}, curve);
  const std::string room = "latency", user = "alice";
  const std::string body(config.payload_bytes, 'x');
  DeliveryLatency result;

  sb::client::Client publisher(node.client_options());
  if (auto r = publisher.create_room(room, user); !r) {
    result.error = "create_room: " + r.error().message;
    return result;
  }
  auto subscriber = std::make_unique<sb::client::Client>(node.client_options());
  if (auto r = subscriber->subscribe(room); !r) {
    result.error = "subscribe: " + r.error().message;
    return result;
  }

  // The subscriber thread stamps each message as next() returns it.
  std::mutex mutex;
  std::condition_variable delivered_cv;
  std::uint64_t delivered_seq = 0;
  std::vector<std::pair<std::uint64_t, SteadyClock::time_point>> received;
  std::string sub_error;
  std::atomic<bool> stop{false};
  received.reserve(static_cast<std::size_t>(config.latency_warmup + config.latency_samples) + 16);
  std::thread sub_thread([&] {
    while (!stop.load()) {
      auto m = subscriber->next(std::chrono::milliseconds(100));
      auto now = SteadyClock::now();
      std::lock_guard lock(mutex);
      if (!m) {
        sub_error = "next: " + m.error().message;
        delivered_cv.notify_all();
        return;
      }
      if (!*m) continue;
      received.emplace_back((*m)->seq, now);
      delivered_seq = std::max(delivered_seq, (*m)->seq);
      delivered_cv.notify_all();
    }
  });

  // The background load: another Client publishing into another room at a steady rate.
  std::unique_ptr<sb::client::Client> loader;
  std::optional<PacedLoad> load;
  std::uint64_t load_errors = 0;
  if (load_per_s > 0) {
    loader = std::make_unique<sb::client::Client>(node.client_options(config.window));
    if (auto r = loader->create_room("load", user); !r)
      result.error = "create_room: " + r.error().message;
    else
      load.emplace(load_per_s, [&, client = loader.get()](std::size_t due) {
        for (std::size_t i = 0; i < due; ++i)
          client->publish_async("load", user, body, [&](const auto& r) { load_errors += r ? 0 : 1; });
        (void)client->next(std::chrono::milliseconds(0));  // takes the acks that have come
        return due;
      });
  }

  // One message at a time: publish, wait for the ack, wait for the delivery, repeat.
  std::vector<std::pair<std::uint64_t, SteadyClock::time_point>> sent;
  sent.reserve(received.capacity());
  auto begin = SteadyClock::now();
  for (int i = 0; result.error.empty() && i < config.latency_warmup + config.latency_samples; ++i) {
    if (i == config.latency_warmup) begin = SteadyClock::now();  // latency_max counts the samples only
    if (i >= config.latency_warmup && SteadyClock::now() - begin > config.latency_max) break;
    auto t0 = SteadyClock::now();
    auto ack = publisher.publish(room, user, body);
    if (!ack) {
      result.error = "publish: " + ack.error().message;
      break;
    }
    std::unique_lock lock(mutex);
    if (!delivered_cv.wait_for(lock, std::chrono::seconds(10),
                               [&] { return delivered_seq >= ack->seq || !sub_error.empty(); })) {
      result.error = "seq " + std::to_string(ack->seq) + " not delivered within 10 s";
      break;
    }
    if (!sub_error.empty()) {
      result.error = sub_error;
      break;
    }
    if (i >= config.latency_warmup) sent.emplace_back(ack->seq, t0);
  }
  result.seconds = Seconds(SteadyClock::now() - begin).count();
  if (load) {
    result.load_per_s = load->stop();
    if (load_errors > 0) result.error = std::to_string(load_errors) + " background publishes failed";
  }
  stop.store(true);
  sub_thread.join();
  result.stats = subscriber->subscription_stats();

  std::sort(received.begin(), received.end());
  std::vector<double> us;
  for (const auto& [seq, t0] : sent) {
    auto it = std::lower_bound(received.begin(), received.end(), std::make_pair(seq, SteadyClock::time_point::min()));
    if (it != received.end() && it->first == seq) us.push_back(micros(it->second - t0));
  }
  result.latency = summarize(std::move(us));
  return result;
}

/// One room, `subscribers` Clients following it (sharing one ZeroMQ context, as the raw
/// SUBs do), a publisher pipelining `messages` into it: from the first publish until
/// every subscriber has every message.
Fanout switchboard_fanout(const Config& config, int subscribers, std::size_t messages) {
  Fanout result;
  result.subscribers = subscribers;
  result.messages = messages;
  // nosync: this measures delivery, and keeps the publisher ahead of the subscribers.
  BenchNode node(config, Durability::nosync);
  const std::string room = "fanout", user = "alice";
  const std::string body(config.payload_bytes, 'x');
  zmq::context_t sub_context(1);
  sub_context.set(zmq::ctxopt::max_sockets, 4 * subscribers + 64);  // a Client: DEALER, SUB, its link monitor (two)
  std::vector<std::unique_ptr<sb::client::Client>> subs;
  {
    sb::client::Client publisher(node.client_options(config.window));
    if (auto r = publisher.create_room(room, user); !r) {
      result.error = "create_room: " + r.error().message;
      return result;
    }
    for (int i = 0; i < subscribers; ++i) {
      auto o = node.client_options();
      o.context = &sub_context;
      subs.push_back(std::make_unique<sb::client::Client>(o));
      if (auto r = subs.back()->subscribe(room); !r) {
        result.error = "subscribe: " + r.error().message;
        return result;
      }
    }
    // Subscriptions reach the PUB asynchronously: publish a message every few ms until
    // every subscriber has had one live (not from history).
    std::uint64_t last = 0;
    std::vector<std::uint64_t> seen(subs.size(), 0);  // the last seq each subscriber has had
    const auto give_up = SteadyClock::now() + std::chrono::seconds(30);
    for (bool all_live = false; !all_live;) {
      if (SteadyClock::now() > give_up) {
        result.error = "subscribers not all live after 30 s";
        return result;
      }
      auto ack = publisher.publish(room, user, "hello");
      if (!ack) {
        result.error = "publish: " + ack.error().message;
        return result;
      }
      last = ack->seq;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      all_live = true;
      for (std::size_t i = 0; i < subs.size(); ++i) {
        for (auto m = subs[i]->next(std::chrono::milliseconds(0)); m && *m;
             m = subs[i]->next(std::chrono::milliseconds(0)))
          seen[i] = (*m)->seq;
        if (subs[i]->subscription_stats().live == 0) all_live = false;
      }
    }
    // Everything up to `last` is delivered or on its way: drain it before the clock starts.
    receive_round_robin(subscribers, 1, [&](int i, bool& any) {
      auto& s = *subs[static_cast<std::size_t>(i)];
      if (auto m = s.next(std::chrono::milliseconds(1)); m && *m)
        any = true, seen[static_cast<std::size_t>(i)] = (*m)->seq;
      return seen[static_cast<std::size_t>(i)] >= last;
    });
    std::uint64_t repaired_before = 0;
    for (auto& s : subs) repaired_before += s->subscription_stats().repaired;

    const std::uint64_t target = last + messages;
    std::atomic<std::uint64_t> deliveries{0};
    std::string publish_error;
    const auto start = SteadyClock::now();
    std::thread pub_thread([&] {
      for (std::size_t i = 0; i < messages; ++i)
        publisher.publish_async(room, user, body, [&](const auto& r) {
          if (!r) publish_error = r.error().message;
        });
      if (!publisher.wait_all()) publish_error = "publishes unacked after 60 s";
    });
    std::vector<std::string> errors(subs.size());
    receive_round_robin(subscribers, 2, [&](int i, bool& any) {
      auto& s = *subs[static_cast<std::size_t>(i)];
      auto& at = seen[static_cast<std::size_t>(i)];
      std::uint64_t taken = 0;
      while (at < target) {
        auto m = s.next(std::chrono::milliseconds(0));
        if (!m) {
          errors[static_cast<std::size_t>(i)] = m.error().message;
          at = target;  // give up on this one
          break;
        }
        if (!*m) break;
        at = (*m)->seq, ++taken;
      }
      if (taken) any = true, deliveries.fetch_add(taken, std::memory_order_relaxed);
      return at >= target;
    });
    result.seconds = Seconds(SteadyClock::now() - start).count();
    pub_thread.join();
    result.deliveries = deliveries.load();
    for (auto& s : subs) result.repaired += s->subscription_stats().repaired;
    result.repaired -= repaired_before;
    if (!publish_error.empty()) result.error = "publish: " + publish_error;
    for (auto& e : errors)
      if (!e.empty()) result.error = "next: " + e;
  }
  subs.clear();  // clients close before their context and the node
  return result;
}

struct HistoryReplay {
  double newest_per_s = 0;  // newest config.history_newest, in pages, newest first
  double all_per_s = 0;     // every message, in pages, oldest first
  std::uint64_t messages = 0;
  double fill_seconds = 0;
  RawScan raw;  // the same reads with an LMDB cursor on the same file
  std::size_t page_bytes = 0;       // a full page's reply frame, as it crossed the wire
  double raw_zmq_msg_per_s = 0;     // pages of page_bytes over plain ZeroMQ, two ahead, times messages a page
  std::string error;
};

/// A room of config.history_messages stored messages (written with HistoryStore before
/// the node starts, dated a day ago so the node's dedup window skips them), read through
/// Client::history_page (paging through: Client::read_history) in pages of the node's largest size; then the node stops and the same
/// file is read with a plain LMDB cursor.
HistoryReplay switchboard_history(const Config& config) {
  HistoryReplay result;
  TempDir dir(config.data_base, "switchboard-bench-history");
  const auto data = dir.path() / "data";
  const std::string room = "history", user = "alice";
  {
    const auto start = SteadyClock::now();
    sb::persistence::StoreOptions store_options;
    store_options.dir = data;
    store_options.durability = Durability::nosync;
    auto store = sb::persistence::HistoryStore::open(store_options);
    if (!store) {
      result.error = "HistoryStore::open: " + store.error().message;
      return result;
    }
    const auto day_ago = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count() -
        86'400'000);
    std::vector<sb::persistence::Record> batch{sb::persistence::CreateRoom{room, user, day_ago}};
    const std::string body(config.payload_bytes, 'x');
    char id[40];
    for (std::uint64_t seq = 1; seq <= config.history_messages; ++seq) {
      std::snprintf(id, sizeof id, "%032llx", static_cast<unsigned long long>(seq));
      batch.emplace_back(sb::persistence::StoredMessage{room, seq, user, day_ago, body, id});
      if (batch.size() == 10'000 || seq == config.history_messages) {
        if (auto r = store->append_batch(batch); !r) {
          result.error = "append_batch: " + r.error().message;
          return result;
        }
        batch.clear();
      }
    }
    result.fill_seconds = Seconds(SteadyClock::now() - start).count();
  }
  {
    BenchNode node(config, Durability::nosync, data);
    sb::client::Client client(node.client_options());
    auto page = [&](sb::client::HistoryQuery q) -> std::optional<sb::transport::HistoryPage> {
      q.limit = config.history_page;
      auto h = client.history_page(room, q);
      if (!h) {
        result.error = "history: " + h.error().message;
        return std::nullopt;
      }
      return std::move(*h);
    };
    std::size_t newest = 0;
    auto start = SteadyClock::now();
    for (int r = 0; r < config.history_rounds && result.error.empty(); ++r) {
      sb::client::HistoryQuery q;
      for (std::size_t got = 0; got < config.history_newest;) {
        auto h = page(q);
        if (!h || h->messages.empty()) break;
        got += h->messages.size();
        q.before = h->messages.front().seq;
      }
      newest += config.history_newest;
    }
    result.newest_per_s = static_cast<double>(newest) / Seconds(SteadyClock::now() - start).count();
    start = SteadyClock::now();
    // Every message, oldest first, with the next pages asked while one is read.
    auto read = client.read_history(
        room, 0,
        [&](const sb::transport::HistoryPage& h) {
          result.messages += h.messages.size();
          if (h.messages.size() == config.history_page) result.page_bytes = h.bytes->size();
          return true;
        },
        config.history_page);
    if (!read) result.error = "read_history: " + read.error().message;
    result.all_per_s = static_cast<double>(result.messages) / Seconds(SteadyClock::now() - start).count();
    if (result.error.empty() && result.messages != config.history_messages)
      result.error = "paged through " + std::to_string(result.messages) + " of " +
                     std::to_string(config.history_messages) + " messages";
  }  // the node closes the store before the raw reads open it
  result.raw = raw_lmdb_scan(config, data);
  if (result.page_bytes > 0)
    result.raw_zmq_msg_per_s = raw_zmq_pages(result.page_bytes, config.history_messages / config.history_page) *
                               static_cast<double>(config.history_page);
  return result;
}

/// History reads while publishes commit: a room of 1000 stored messages read one page
/// (its newest 100) at a time, first at idle, then while 16 publishers pipeline `sync`
/// publishes to rooms of their own. Reads go to the history reader's thread, so they
/// should not wait behind the group commits and their fsyncs.
struct HistoryUnderLoad {
  LatencySummary idle, loaded;
  std::uint64_t published = 0;  // acked during the loaded reads
  std::string error;
};

HistoryUnderLoad switchboard_history_under_load(const Config& config) {
  HistoryUnderLoad result;
  constexpr int kPublishers = 16;
  BenchNode node(config, Durability::sync);
  sb::client::Client reader(node.client_options());
  const std::string room = "read-here", user = "reader", body(config.payload_bytes, 'x');
  if (auto r = reader.create_room(room, user); !r) {
    result.error = "create_room: " + r.error().message;
    return result;
  }
  for (int i = 0; i < 1000; ++i) reader.publish_async(room, user, body, [](const auto&) {});
  if (!reader.wait_all(std::chrono::seconds(60))) {
    result.error = "the room's messages were not acknowledged";
    return result;
  }
  auto read_for = [&](Seconds how_long) {
    std::vector<double> us;
    const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(how_long);
    sb::client::HistoryQuery q;
    q.limit = 100;
    while (SteadyClock::now() < end && result.error.empty()) {
      const auto t0 = SteadyClock::now();
      auto page = reader.history(room, q);
      if (!page || page->messages.size() != 100) {
        result.error = page ? "a page of " + std::to_string(page->messages.size()) + " messages"
                            : "history: " + page.error().message;
        break;
      }
      us.push_back(micros(SteadyClock::now() - t0));
    }
    return us;
  };
  result.idle = summarize(read_for(config.throughput_run));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0};
  std::latch publishing(kPublishers + 1);
  std::vector<std::thread> publishers;
  for (int i = 0; i < kPublishers; ++i)
    publishers.emplace_back([&, i] {
      sb::client::Client client(node.client_options(config.window));
      const std::string own = "load-" + std::to_string(i), who = "user-" + std::to_string(i);
      (void)client.create_room(own, who);
      client.publish_async(own, who, body, [](const auto&) {});
      client.wait_all();  // publishing from here on
      publishing.count_down();
      while (!stop.load())
        client.publish_async(own, who, body, [&](const auto& r) { acked += r ? 1 : 0; });
      client.wait_all(std::chrono::seconds(60));
    });
  publishing.arrive_and_wait();
  const std::uint64_t before = acked.load();
  result.loaded = summarize(read_for(config.throughput_run));
  result.published = acked.load() - before;
  stop.store(true);
  for (auto& t : publishers) t.join();
  return result;
}

struct IdleFollowing {
  std::size_t rooms = 0;
  double requests_per_s = 0;  // last_seq and history requests the subscriber sent
  double heads_per_s = 0;     // heads events it received
  double settle_requests = 0;  // what its subscribes cost once (one check per room)
  std::string error;
};

/// One subscriber follows `config.idle_rooms` rooms where nothing is published: what it
/// sends and receives per second once its subscriptions have settled.
IdleFollowing switchboard_idle_following(const Config& config) {
  IdleFollowing result;
  result.rooms = config.idle_rooms;
  BenchNode node(config, Durability::nosync);
  sb::client::Client admin(node.client_options()), subscriber(node.client_options());
  for (std::size_t i = 0; i < config.idle_rooms && result.error.empty(); ++i)
    if (auto r = admin.create_room("idle-" + std::to_string(i), "owner"); !r)
      result.error = "create_room: " + r.error().message;
  for (std::size_t i = 0; i < config.idle_rooms && result.error.empty(); ++i)
    if (auto r = subscriber.subscribe("idle-" + std::to_string(i)); !r)
      result.error = "subscribe: " + r.error().message;
  if (!result.error.empty()) return result;
  auto wait = [&](Seconds how_long) {
    auto got = subscriber.next(std::chrono::duration_cast<std::chrono::milliseconds>(how_long));
    if (!got) result.error = "next: " + got.error().message;
    else if (*got) result.error = "a message in an idle room";
  };
  wait(Seconds(1.5));  // the one check after each subscribe
  const auto settled = subscriber.subscription_stats();
  wait(config.idle_watch);
  const auto idle = subscriber.subscription_stats();
  result.settle_requests = static_cast<double>(settled.checks + settled.fetches);
  result.requests_per_s =
      static_cast<double>(idle.checks + idle.fetches - settled.checks - settled.fetches) / config.idle_watch.count();
  result.heads_per_s = static_cast<double>(idle.heads - settled.heads) / config.idle_watch.count();
  return result;
}

struct ReadState {
  std::size_t rooms = 0, per_room = 0;
  LatencySummary summary;       // rooms_summary of a user in every room
  double mark_read_per_s = 0;   // pipelined mark_read, each moving a marker (one node)
  std::map<std::string, std::size_t> rooms_of;  // three nodes: the user's rooms each node owns
  std::string error;
};

/// What is wrong with `reply`, the room list of a user in every room of `expected`, each
/// of `per_room` messages with the user's marker at `read`; "" when it is right: one
/// summary per room, no node missing, and the unread count that the marker leaves.
std::string wrong_summaries(const sb::Result<sb::transport::RoomsOk>& reply, const std::set<std::string>& expected,
                            std::uint64_t per_room, std::uint64_t read) {
  if (!reply) return "rooms_summary: " + reply.error().message;
  if (!reply->missing.empty()) return "rooms_summary: node " + reply->missing.front() + " missing";
  if (reply->summaries.size() != expected.size())
    return "rooms_summary: " + std::to_string(reply->summaries.size()) + " summaries for " +
           std::to_string(expected.size()) + " rooms";
  std::set<std::string> seen;
  for (const auto& s : reply->summaries) {
    if (!expected.count(s.room) || !seen.insert(s.room).second)
      return "rooms_summary: room " + s.room + " unexpected or twice";
    if (s.last_seq != per_room || s.read_seq != read || s.unread != per_room - read)
      return "rooms_summary: " + s.room + " last_seq " + std::to_string(s.last_seq) + " read_seq " +
             std::to_string(s.read_seq) + " unread " + std::to_string(s.unread) + ", not " + std::to_string(per_room) +
             ", " + std::to_string(read) + ", " + std::to_string(per_room - read);
  }
  return "";
}

/// `client`'s rooms_summary of `user`, 200 times one after another, each reply checked
/// with wrong_summaries (outside the timing).
LatencySummary time_summaries(sb::client::Client& client, const std::string& user, const std::set<std::string>& rooms,
                              std::uint64_t per_room, std::string& error) {
  std::vector<double> us;
  for (int i = 0; i < 200 && error.empty(); ++i) {
    const auto t0 = SteadyClock::now();
    auto r = client.rooms_summary(user);
    us.push_back(micros(SteadyClock::now() - t0));
    error = wrong_summaries(r, rooms, per_room, 0);
  }
  return summarize(std::move(us));
}

/// A user in config.readstate_rooms rooms of 100 messages each: how long the room list
/// with summaries takes (p50 of 200), and how many mark_reads a second one client gets
/// stored, pipelined, each moving one room's marker one message on.
ReadState switchboard_read_state(const Config& config) {
  ReadState result;
  result.rooms = config.readstate_rooms;
  result.per_room = 100;
  BenchNode node(config, Durability::nosync);
  sb::client::Client c(node.client_options());
  auto room_name = [](std::size_t i) { return "rs-" + std::to_string(i); };
  for (std::size_t i = 0; i < result.rooms && result.error.empty(); ++i) {
    if (auto r = c.create_room(room_name(i), "writer"); !r) result.error = "create_room: " + r.error().message;
    else if (auto j = c.join(room_name(i), "reader"); !j) result.error = "join: " + j.error().message;
  }
  for (std::size_t m = 0; m < result.per_room && result.error.empty(); ++m)
    for (std::size_t i = 0; i < result.rooms; ++i)
      c.publish_async(room_name(i), "writer", "message " + std::to_string(m), [&](const auto& ack) {
        if (!ack && result.error.empty()) result.error = "publish: " + ack.error().message;
      });
  if (!c.wait_all()) result.error = "publishes not answered";
  if (!result.error.empty()) return result;

  std::set<std::string> rooms;
  for (std::size_t i = 0; i < result.rooms; ++i) rooms.insert(room_name(i));
  result.summary = time_summaries(c, "reader", rooms, result.per_room, result.error);

  const auto start = SteadyClock::now();
  std::size_t marks = 0;
  for (std::size_t seq = 1; seq <= result.per_room && result.error.empty(); ++seq)
    for (std::size_t i = 0; i < result.rooms; ++i, ++marks)
      c.mark_read_async(room_name(i), "reader", seq, [&, seq](const auto& ok) {
        if (!ok && result.error.empty()) result.error = "mark_read: " + ok.error().message;
        else if (ok && ok->seq != seq && result.error.empty()) result.error = "mark_read: the marker is not where it was put";
      });
  if (!c.wait_all()) result.error = "mark_reads not answered";
  result.mark_read_per_s = static_cast<double>(marks) / Seconds(SteadyClock::now() - start).count();
  if (auto wrong = wrong_summaries(c.rooms_summary("reader"), rooms, result.per_room, result.per_room);
      result.error.empty() && !wrong.empty())
    result.error = "after marking every message read: " + wrong;
  return result;
}

/// Three Nodes, a, b and c, in this process, built from a topology in which each owns
/// one chat shard (nosync, tcp loopback, default [cluster] settings). Clients must be
/// gone before the cluster is.
class BenchCluster {
 public:
  explicit BenchCluster(const Config& config) : dir_(config.data_base, "switchboard-bench-cluster") {
    auto started = sb::bench::start_in_process(
        [&] { return loopback_topology(dir_.path(), "nosync", {"a", "b", "c"}); }, "readstate");
    topology_ = std::move(started.topology);
    nodes_ = std::move(started.nodes);
    placement_.emplace(topology_.shards);
  }
  BenchCluster(const BenchCluster&) = delete;
  BenchCluster& operator=(const BenchCluster&) = delete;

  sb::client::ClientOptions client_options(const std::string& node) const {
    sb::client::ClientOptions o;
    o.endpoint = topology_.nodes.at(node).client;
    return o;
  }
  /// The node that owns `room` by the topology's placement.
  std::string owner_of(const std::string& room) const { return placement_->owner_of(room).owner; }

 private:
  TempDir dir_;
  sb::router::Topology topology_;
  std::optional<sb::router::RoomPlacement> placement_;
  std::map<std::string, std::unique_ptr<sb::actors::Node>> nodes_;
};

/// The same user in config.readstate_rooms rooms of 100 messages each, but the rooms
/// spread evenly over the shards of three nodes (each room made and filled through its
/// owner): how long the room list with summaries takes when asked of node a, which
/// gathers b's and c's (p50 of 200). Every reply must hold every room, with no node
/// missing; then everything is marked read through a (forwarded to the owners) and the
/// list must say so.
ReadState switchboard_read_state_three_nodes(const Config& config) {
  ReadState result;
  result.rooms = config.readstate_rooms;
  result.per_room = 100;
  BenchCluster cluster(config);
  std::map<std::string, std::unique_ptr<sb::client::Client>> clients;
  for (const char* node : {"a", "b", "c"})
    clients[node] = std::make_unique<sb::client::Client>(cluster.client_options(node));
  // Right after the nodes start their links may not be up: a's list names who is missing.
  const auto give_up = SteadyClock::now() + std::chrono::seconds(30);
  for (auto r = clients["a"]->rooms(); !r || !r->missing.empty(); r = clients["a"]->rooms()) {
    if (SteadyClock::now() > give_up) {
      result.error = "nodes b and c not reachable from a after 30 s";
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  std::map<std::string, std::string> owner;  // room -> node, a third of the rooms each
  for (std::size_t i = 0; owner.size() < result.rooms; ++i) {
    const std::string room = "rs3-" + std::to_string(i), node = cluster.owner_of(room);
    const std::size_t share = (result.rooms + 2 - static_cast<std::size_t>(node[0] - 'a')) / 3;
    if (result.rooms_of[node] < share) owner[room] = node, ++result.rooms_of[node];
  }
  std::set<std::string> rooms;
  for (const auto& [room, node] : owner) {
    rooms.insert(room);
    auto& c = *clients[node];
    if (auto r = c.create_room(room, "writer"); !r) result.error = "create_room: " + r.error().message;
    else if (auto j = c.join(room, "reader"); !j) result.error = "join: " + j.error().message;
    if (!result.error.empty()) return result;
  }
  for (std::size_t m = 0; m < result.per_room; ++m)
    for (const auto& [room, node] : owner)
      clients[node]->publish_async(room, "writer", "message " + std::to_string(m), [&](const auto& ack) {
        if (!ack && result.error.empty()) result.error = "publish: " + ack.error().message;
      });
  for (auto& [node, c] : clients)
    if (!c->wait_all()) result.error = "publishes not answered";
  if (!result.error.empty()) return result;

  auto& a = *clients["a"];
  result.summary = time_summaries(a, "reader", rooms, result.per_room, result.error);
  for (const auto& room : rooms)
    a.mark_read_async(room, "reader", result.per_room, [&](const auto& ok) {
      if (!ok && result.error.empty()) result.error = "mark_read: " + ok.error().message;
    });
  if (!a.wait_all()) result.error = "mark_reads not answered";
  if (auto wrong = wrong_summaries(a.rooms_summary("reader"), rooms, result.per_room, result.per_room);
      result.error.empty() && !wrong.empty())
    result.error = "after marking every message read: " + wrong;
  return result;
}

// ---- report ---------------------------------------------------------------------------

/// One line of the table: a Switchboard figure against one baseline.
struct Row {
  std::string workload;
  std::string unit;
  double switchboard = 0;
  std::string baseline;
  double value = std::nan("");  // the baseline's figure
  enum class Target { none, at_least, at_most } target = Target::none;
  double target_ratio = 0;
  std::string skipped;  // why the baseline has no figure
  json details = json::object();

  double ratio() const { return value > 0 ? switchboard / value : std::nan(""); }
  std::string target_text() const {
    if (target == Target::none) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s %.2fx", target == Target::at_least ? ">=" : "<=", target_ratio);
    return buf;
  }
  std::string status() const {
    if (!skipped.empty()) return "skip";
    if (target == Target::none) return "-";
    double r = ratio();
    if (std::isnan(r) || switchboard <= 0) return "FAILED";
    bool met = target == Target::at_least ? r >= target_ratio : r <= target_ratio;
    return met ? "met" : "short";
  }
};

constexpr int kBaselineWidth = 41;

void print_table(const std::vector<Row>& rows, std::vector<std::string>& notes) {
  int workload_width = 42;  // or the longest workload's name
  for (const auto& r : rows) workload_width = std::max(workload_width, static_cast<int>(r.workload.size()));
  std::printf("\n%-*s %-5s %11s  %-*s %11s %8s %8s %6s\n", workload_width, "workload", "unit", "switchboard",
              kBaselineWidth, "baseline (same run)", "figure", "ratio", "target", "status");
  std::printf("%s\n", std::string(workload_width + 5 + 11 + kBaselineWidth + 11 + 8 + 8 + 6 + 8, '-').c_str());
  std::map<std::string, int> footnotes;
  std::string previous;
  for (const auto& r : rows) {
    const bool first = r.workload != previous;
    previous = r.workload;
    std::string figure = r.baseline == "-" ? "-" : format_value(r.value, r.unit);
    if (!r.skipped.empty()) {
      auto [it, added] = footnotes.emplace(r.skipped, static_cast<int>(footnotes.size()) + 1);
      if (added) notes.push_back("[" + std::to_string(it->second) + "] " + r.skipped);
      figure = "skip[" + std::to_string(it->second) + "]";
    }
    char ratio[16];
    if (std::isnan(r.ratio()))
      std::snprintf(ratio, sizeof ratio, "-");
    else
      std::snprintf(ratio, sizeof ratio, "%.3fx", r.ratio());
    std::printf("%-*s %-5s %11s  %-*s %11s %8s %8s %6s\n", workload_width, first ? r.workload.c_str() : "",
                first ? r.unit.c_str() : "", first ? format_value(r.switchboard, r.unit).c_str() : "", kBaselineWidth,
                r.baseline.c_str(), figure.c_str(), ratio, r.target_text().c_str(), r.status().c_str());
  }
}

void usage(const char* argv0) {
  std::printf(
      "usage: %s [--quick] [--json PATH] [--dir PATH] [--window N] [--no-peers] [--only NAME]\n"
      "          [--publishers N,..] [--bodies B,..] [--durability D] [--subscribers N,..] [--switchboard-only]\n"
      "          [--metrics]\n"
      "  --quick      a shorter run (fewer samples, 1 and 16 publishers, history of 100k)\n"
      "  --json PATH  where to write the results (default: bench-results.json)\n"
      "  --dir PATH   where to make the temporary data directories (default: %s)\n"
      "  --window N   messages in flight per connection in the throughput runs (default: 1000)\n"
      "  --no-peers   do not start redis-server and nats-server\n"
      "  --only NAME  run one section: throughput, latency (alone, it first measures the 1-publisher\n"
      "               peaks its loads are half of), fanout, history, presence (runs presence_bench)\n"
      "               or cluster (runs cluster_bench: publishes forwarded one hop), curve (CURVE on\n"
      "               against off: durable publish throughput and delivery latency), sealed (bodies\n"
      "               encrypted at rest against in clear: durable publish throughput), cpu (CPU time per\n"
      "               acknowledged publish, the node in a process of its own and the clients here),\n"
      "               memory (bytes per publish remembered in the retry window), idle (a subscriber\n"
      "               of many idle rooms: requests sent and heads received per second), readstate (a\n"
      "               user in 1000 rooms: the room list with unread counts on one node and across three,\n"
      "               and pipelined mark_read)\n"
      "  to narrow a section, e.g. for profiling one workload:\n"
      "  --publishers N,..   throughput: publishers per run (default 1,4,16; --quick 1,16)\n"
      "  --bodies B,..       throughput: body sizes in bytes (default 100,1024)\n"
      "  --durability D      throughput: sync or nosync only\n"
      "  --subscribers N,..  fan-out: subscribers per run (default 1,100,1000)\n"
      "  --switchboard-only  throughput and fan-out: run no baseline\n"
      "  --metrics    the Switchboard node keeps and serves its metrics (docs/METRICS.md), as\n"
      "               `switchboard run` does by default; without it, it keeps none\n",
      argv0, std::filesystem::temp_directory_path().c_str());
}

/// "1,16" -> {1, 16}.
template <class T>
std::vector<T> numbers(const std::string& list) {
  std::vector<T> out;
  for (std::size_t at = 0; at <= list.size();) {
    std::size_t comma = std::min(list.find(',', at), list.size());
    out.push_back(static_cast<T>(std::stoul(list.substr(at, comma - at))));
    at = comma + 1;
  }
  return out;
}

/// Single-quoted for the shell.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// What a benchmark built beside this one measured: the "results" of its JSON.
struct SiblingRun {
  json results = json::array();
  std::string error;
};

/// Runs `name` from this executable's directory with `args` and --json into `dir`, its
/// own output going to a log there.
SiblingRun run_sibling(const std::string& name, const std::vector<std::string>& args,
                       const std::filesystem::path& dir) {
  SiblingRun run;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / name;
  if (ec || !std::filesystem::exists(exe)) {
    run.error = name + " is not built next to switchboard_bench";
    return run;
  }
  const auto out = dir / (name + ".json"), log = dir / (name + ".log");
  std::string command = quoted(exe.string());
  for (const auto& a : args) command += " " + quoted(a);
  command += " --json " + quoted(out.string()) + " > " + quoted(log.string()) + " 2>&1";
  if (int rc = std::system(command.c_str()); rc != 0) {
    std::ifstream in(log);
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    run.error = name + " failed (status " + std::to_string(rc) + "): " + last;
    return run;
  }
  try {
    std::ifstream in(out);
    run.results = json::parse(in).at("results");
  } catch (const std::exception& e) {
    run.error = name + ": unreadable results: " + e.what();
  }
  return run;
}

std::string publishers_text(int n) { return std::to_string(n) + (n == 1 ? " publisher" : " publishers"); }
std::string bytes_text(std::size_t b) {
  return b % 1024 == 0 ? std::to_string(b / 1024) + " KiB" : std::to_string(b) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      config.make_quick();
    } else if (a == "--json" && i + 1 < argc) {
      config.json_path = argv[++i];
    } else if (a == "--dir" && i + 1 < argc) {
      config.data_base = argv[++i];
    } else if (a == "--window" && i + 1 < argc) {
      config.window = std::max(1ul, std::stoul(argv[++i]));
    } else if (a == "--no-peers") {
      config.peers = false;
    } else if (a == "--only" && i + 1 < argc) {
      config.only = argv[++i];
    } else if (a == "--switchboard-only") {
      config.baselines = false;
    } else if (a == "--metrics") {
      config.metrics = true;
    } else if (a == "--publishers" && i + 1 < argc) {
      config.publishers = config.peer_publishers = numbers<int>(argv[++i]);
    } else if (a == "--subscribers" && i + 1 < argc) {
      config.fanout_subscribers = numbers<int>(argv[++i]);
    } else if (a == "--bodies" && i + 1 < argc) {
      config.bodies = numbers<std::size_t>(argv[++i]);
    } else if (a == "--durability" && i + 1 < argc) {
      std::string d = argv[++i];
      if (d == "sync")
        config.durabilities = {Durability::sync};
      else if (d == "nosync")
        config.durabilities = {Durability::nosync};
    } else if (a == "--help" || a == "-h") {
      usage(argv[0]);
      return 0;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  // Node start/stop lines would interleave with the table, and so would the warning of
  // each node run without CURVE (all but the CURVE rows', as the baselines run plain).
  spdlog::set_level(spdlog::level::err);
  std::signal(SIGPIPE, SIG_IGN);           // a peer server that dies mid-run fails its row, not the suite

  const auto suite_start = SteadyClock::now();
  const std::string load_before = loadavg();
  const std::string fs = filesystem_of(config.data_base);
  std::printf("switchboard_bench%s: %u cores (%s), load %s, data under %s (%s)\n", config.quick ? " --quick" : "",
              std::thread::hardware_concurrency(), cpu_model().c_str(), load_before.c_str(), config.data_base.c_str(),
              fs.c_str());
  std::fflush(stdout);

  std::vector<Row> rows;
  std::vector<std::string> notes;
  std::map<std::string, std::string> guarantees = {
      {"switchboard sync", "acked only after the group commit is fsynced: survives power loss"},
      {"switchboard nosync", "acked after the LMDB commit, without fsync: survives a process crash, not a power loss"},
  };
  std::map<std::string, std::string> versions;  // of the peers, as they ran
  bool failed = false;
  auto progress = [](const std::string& what) {
    std::printf("  running %s ...\n", what.c_str());
    std::fflush(stdout);
  };
  auto note_error = [&](const std::string& what, const std::string& error) {
    if (error.empty()) return;
    failed = true;
    std::printf("  ERROR in %s: %s\n", what.c_str(), error.c_str());
    notes.push_back("ERROR in " + what + ": " + error);
  };
  // Each Switchboard figure is compared with raw runs taken just before and just after it
  // (pooled), so that load from elsewhere on the machine weighs on both sides alike.
  auto bracket_note = [&](const std::string& what, double before, double after) {
    if (before <= 0 || after <= 0) return;
    double drift = std::abs(after - before) / std::min(before, after);
    if (drift < 0.2) return;
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: the raw baseline moved %.0f%% between its runs before and after (%.1f, %.1f)",
                  what.c_str(), drift * 100, before, after);
    notes.emplace_back(buf);
  };

  // The 1-publisher, 100-byte peaks: the "50 % of peak" loads of the latency runs.
  std::map<Durability, double> switchboard_peak = {{Durability::sync, 0}, {Durability::nosync, 0}};
  double raw_peak = 0;
  auto section = [&](const char* name) { return config.only.empty() || config.only == name; };

  try {
    // ---- durable publish throughput --------------------------------------------------
    for (std::size_t bytes : section("throughput") ? config.bodies : std::vector<std::size_t>{}) {
      for (int n : config.publishers) {
        const bool with_peers =
            std::find(config.peer_publishers.begin(), config.peer_publishers.end(), n) != config.peer_publishers.end();
        if (bytes != config.payload_bytes && !with_peers) continue;  // 4 publishers: 100 B against raw only
        const std::string what = publishers_text(n) + ", " + bytes_text(bytes);
        Throughput raw_before, raw_after;
        if (config.baselines) {
          progress("raw DEALER->ROUTER throughput, " + what);
          raw_before = raw_throughput(config, n, bytes);
          note_error("raw throughput", raw_before.error);
        }
        std::map<Durability, Throughput> sb_runs;
        for (Durability d : config.durabilities) {
          progress(std::string("durable publish ") + durability_name(d) + ", " + what);
          sb_runs[d] = switchboard_throughput(config, d, n, bytes);
          note_error(std::string("durable publish ") + durability_name(d) + ", " + what, sb_runs[d].error);
        }
        if (config.baselines) {
          progress("raw DEALER->ROUTER throughput, " + what + " (again)");
          raw_after = raw_throughput(config, n, bytes);
          note_error("raw throughput", raw_after.error);
        }
        Throughput raw = raw_before;  // pooled: all acks over all seconds
        raw.acked += raw_after.acked;
        raw.seconds += raw_after.seconds;
        bracket_note("throughput, " + what + " (msg/s)", raw_before.per_second(), raw_after.per_second());
        if (n == 1 && bytes == config.payload_bytes) raw_peak = raw.per_second();

        // A group commit holds what waits while the previous batch is stored: at most half
        // of all publishers' windows (two batches at persistence), and 4096 records.
        const std::size_t batch = std::min<std::size_t>(config.window * static_cast<std::size_t>(n) / 2, 4096);
        for (Durability d : config.durabilities) {
          const Throughput& s = sb_runs[d];
          if (n == 1 && bytes == config.payload_bytes) switchboard_peak[d] = s.per_second();
          const std::string name = std::string("durable publish ") + durability_name(d) + ", " + what;
          if (s.duplicates > 0) {
            char buf[300];
            std::snprintf(buf, sizeof buf,
                          "%s: %llu acks answered a retry (the first reply never reached the client, which "
                          "resent after its 1000 ms attempt timeout); the run took %.2f s for %.2f s of publishing",
                          name.c_str(), static_cast<unsigned long long>(s.duplicates), s.seconds,
                          config.throughput_run.count());
            notes.emplace_back(buf);
          }
          json base = {{"kind", "throughput"}, {"durability", durability_name(d)}, {"publishers", n},
                       {"body_bytes", bytes},  {"window", config.window},          {"switchboard", to_json(s)}};
          Row zmq_row{name,
                       "msg/s",
                       s.per_second(),
                       "raw zmq DEALER->ROUTER",
                       raw.per_second(),
                       d == Durability::nosync ? Row::Target::at_least : Row::Target::none,
                       0.3,
                       "",
                       {}};
          zmq_row.details = base;
          if (!config.baselines) {
            zmq_row.skipped = "not run (--switchboard-only)";
            rows.push_back(zmq_row);
            continue;
          }
          zmq_row.details["baseline"] = {
              {"pooled", to_json(raw)}, {"before", to_json(raw_before)}, {"after", to_json(raw_after)}};
          rows.push_back(zmq_row);

          progress(std::string("raw LMDB append ") + durability_name(d) + ", batch " + std::to_string(batch) + ", " +
                   bytes_text(bytes));
          Throughput lmdb = raw_lmdb_append(config, d, batch, bytes);
          note_error("raw LMDB append", lmdb.error);
          // One publisher at sync: the group commit against raw LMDB's, with the same batch.
          const bool lmdb_target = d == Durability::sync && n == 1;
          Row lmdb_row{name,
                       "msg/s",
                       s.per_second(),
                       "raw LMDB append, batch " + std::to_string(batch),
                       lmdb.per_second(),
                       lmdb_target ? Row::Target::at_least : Row::Target::none,
                       lmdb_target ? 0.8 : 0,
                       "",
                       {}};
          lmdb_row.details = base;
          lmdb_row.details["baseline"] = to_json(lmdb);
          rows.push_back(lmdb_row);

          if (!with_peers || !config.peers) continue;
          for (auto* peer : {&redis_throughput, &nats_throughput}) {
            progress(std::string(peer == &redis_throughput ? "redis" : "nats") + " at " + durability_name(d) +
                     "'s durability, " + what);
            PeerThroughput p = (*peer)(config, d, n, bytes);
            guarantees[p.setting.name] = p.setting.guarantee;
            if (!p.setting.versions.empty()) versions[peer == &redis_throughput ? "redis" : "nats"] = p.setting.versions;
            note_error(p.setting.name, p.throughput.error);
            // NATS JetStream: at least twice as fast, at nosync (its default); Redis: 1.5
            // times, at 16 publishers, at either durability.
            const bool nats = peer == &nats_throughput;
            const bool peer_target = nats ? d == Durability::nosync : n >= 16;
            Row peer_row{name,
                         "msg/s",
                         s.per_second(),
                         p.setting.name,
                         p.throughput.per_second(),
                         peer_target ? Row::Target::at_least : Row::Target::none,
                         nats ? 2.0 : 1.5,
                         "",
                         {}};
            if (!p.skipped.empty()) peer_row.value = std::nan(""), peer_row.skipped = p.skipped;
            peer_row.details = base;
            peer_row.details["baseline"] = to_json(p.throughput);
            peer_row.details["guarantee"] = p.setting.guarantee;
            if (!p.skipped.empty()) peer_row.details["skipped"] = p.skipped;
            rows.push_back(peer_row);
          }
        }
      }
    }

    // Throughput grows with publishers: the most publishers' nosync figure against one's.
    if (section("throughput") && config.publishers.size() > 1) {
      const Row* one = nullptr;
      const Row* most = nullptr;
      const std::string most_name = std::string("durable publish nosync, ") + publishers_text(config.publishers.back()) +
                                    ", " + bytes_text(config.payload_bytes);
      for (const auto& r : rows) {
        if (r.workload == std::string("durable publish nosync, ") + publishers_text(1) + ", " + bytes_text(config.payload_bytes))
          one = &r;
        if (r.workload == most_name) most = &r;
      }
      if (one && most)
        rows.push_back({most_name, "msg/s", most->switchboard, "the same, 1 publisher", one->switchboard,
                        Row::Target::at_least, 1.3, "", {{"kind", "throughput_growth"}}});
    }

    // ---- CPU per acknowledged message, node and client processes apart ------------------
    if (section("cpu")) {
      const int n = config.publishers.back();
      progress("CPU per acknowledged publish, nosync, " + publishers_text(n) + " (node in a process of its own)");
      CpuPerAck cpu = cpu_per_ack(config, n);
      note_error("CPU per acknowledged publish", cpu.error);
      const json details = {{"kind", "cpu"},        {"publishers", n},        {"acked", cpu.acked},
                            {"seconds", cpu.seconds}, {"node_us", cpu.node_us}, {"client_us", cpu.client_us}};
      rows.push_back({"CPU per ack, node process, nosync, " + publishers_text(n), "us", cpu.node_us, "the target, 4 us",
                      4.0, Row::Target::at_most, 1.0, "", details});
      rows.push_back({"CPU per ack, client process, nosync, " + publishers_text(n), "us", cpu.client_us,
                      "the node's, same run", cpu.node_us, Row::Target::none, 0, "", details});
    }

    // ---- memory of the retry window --------------------------------------------------
    if (section("memory")) {
      progress("retry window: bytes per remembered publish, 1,000,000 remembered");
      const auto [table, before] = dedup_bytes_per_entry(1'000'000);
      const json details = {{"kind", "memory"}, {"entries", 1'000'000}, {"dedup_table", table}, {"before", before}};
      rows.push_back({"retry window, bytes per remembered publish", "B", table, "the target, 48 B", 48.0,
                      Row::Target::at_most, 1.0, "", details});
      rows.push_back({"retry window, bytes per remembered publish", "B", table, "string-keyed map, as before", before,
                      Row::Target::none, 0, "", details});
    }

    // ---- publish->delivery latency, at idle and at half of the peak ---------------------
    if (section("latency")) {
      // Peaks the throughput section did not measure are measured here.
      if (raw_peak == 0) {
        progress("raw DEALER->ROUTER throughput, 1 publisher (for the load)");
        raw_peak = raw_throughput(config, 1, config.payload_bytes).per_second();
      }
      for (auto& [d, peak] : switchboard_peak)
        if (peak == 0) {
          progress(std::string("durable publish ") + durability_name(d) + ", 1 publisher (for the load)");
          peak = switchboard_throughput(config, d, 1, config.payload_bytes).per_second();
        }
      progress("raw DEALER->ROUTER round trip");
      RawRoundTrip rtt_before = raw_round_trip(config);
      note_error("raw round trip", rtt_before.error);
      std::optional<RawRoundTrip> rtt_loaded;
      for (bool loaded : {false, true}) {
        const std::string at = loaded ? " @50% load" : " idle";
        if (loaded) {
          progress("raw DEALER->ROUTER round trip at half of its peak");
          rtt_loaded = raw_round_trip(config, config.load_fraction * raw_peak);
          note_error("raw round trip under load", rtt_loaded->error);
        }
        for (Durability d : {Durability::sync, Durability::nosync}) {
          const std::string name = std::string("publish->delivery ") + durability_name(d) + at;
          RawCommit commit;
          if (!loaded) {
            progress(std::string("raw LMDB commit ") + durability_name(d));
            commit = raw_lmdb_commit(config, d, config.latency_samples, config.latency_max / 2);
            note_error("raw LMDB commit", commit.error);
          }
          const double load = loaded ? config.load_fraction * switchboard_peak[d] : 0;
          progress(name + " latency");
          DeliveryLatency s = switchboard_delivery(config, d, load);
          note_error(name, s.error);
          LatencySummary rtt;
          json rtt_details;
          if (loaded) {
            rtt = summarize(rtt_loaded->us);
            rtt_details = {{"latency", to_json(rtt)}, {"load_per_s", rtt_loaded->load_per_s}};
          } else {
            progress("raw DEALER->ROUTER round trip (again)");
            RawRoundTrip rtt_after = raw_round_trip(config);
            note_error("raw round trip", rtt_after.error);
            std::vector<double> pooled = rtt_before.us;
            pooled.insert(pooled.end(), rtt_after.us.begin(), rtt_after.us.end());
            rtt = summarize(std::move(pooled));
            bracket_note(name + " (round trip p50, us)", summarize(rtt_before.us).p50_us,
                         summarize(rtt_after.us).p50_us);
            rtt_before = std::move(rtt_after);  // the next run's "before"
            rtt_details = {{"latency", to_json(rtt)}, {"load_per_s", 0}};
          }
          if (s.stats.repaired > 0)
            notes.push_back(name + ": " + std::to_string(s.stats.repaired) + " messages delivered by gap repair");
          if (loaded) {
            char buf[200];
            std::snprintf(buf, sizeof buf,
                          "%s: background load %.0f msg/s (asked %.0f); raw round trip load %.0f msg/s", name.c_str(),
                          s.load_per_s, load, rtt_loaded->load_per_s);
            notes.emplace_back(buf);
          }
          json details = {{"kind", "latency"},
                          {"durability", durability_name(d)},
                          {"load_per_s", s.load_per_s},
                          {"switchboard", to_json(s.latency)},
                          {"baseline", rtt_details},
                          {"seconds", s.seconds},
                          {"delivered_live", s.stats.live},
                          {"delivered_by_repair", s.stats.repaired},
                          {"payload_bytes", config.payload_bytes}};
          const std::string rtt_name = std::string("raw zmq round trip") + (loaded ? " @50% load" : "");
          // One message at a time is no slower than before batching: nosync idle p50 within 2x a round trip.
          const double p50_target = d == Durability::nosync && !loaded ? 2.0 : 3.0;
          rows.push_back({name + " p50", "us", s.latency.p50_us, rtt_name, rtt.p50_us, Row::Target::at_most, p50_target,
                          "", details});
          if (!loaded) {
            details["raw_lmdb_commit"] = to_json(commit.latency);
            rows.push_back({name + " p50", "us", s.latency.p50_us, "raw LMDB commit, 1 record", commit.latency.p50_us,
                            Row::Target::none, 0, "", details});
          }
          rows.push_back(
              {name + " p99", "us", s.latency.p99_us, rtt_name, rtt.p99_us, Row::Target::at_most, 5.0, "", details});
          rows.push_back(
              {name + " p99.9", "us", s.latency.p999_us, rtt_name, rtt.p999_us, Row::Target::none, 0, "", details});
        }
      }
    }

    // ---- fan-out ------------------------------------------------------------------------
    for (int subscribers : section("fanout") ? config.fanout_subscribers : std::vector<int>{}) {
      const std::size_t messages =
          std::max<std::size_t>(config.fanout_deliveries / static_cast<std::size_t>(subscribers), 100);
      const std::string name =
          "fan-out to " + std::to_string(subscribers) + (subscribers == 1 ? " subscriber" : " subscribers");
      Fanout raw;
      if (config.baselines) {
        progress("raw PUB/SUB " + name);
        raw = raw_pubsub_fanout(config, subscribers, messages);
        note_error("raw PUB/SUB " + name, raw.error);
      }
      progress(name);
      Fanout s = switchboard_fanout(config, subscribers, messages);
      note_error(name, s.error);
      if (s.repaired > 0)
        notes.push_back(name + ": " + std::to_string(s.repaired) + " deliveries came from gap repair (history)");
      auto fan_json = [](const Fanout& f) {
        return json{{"subscribers", f.subscribers}, {"messages", f.messages}, {"deliveries", f.deliveries},
                    {"repaired", f.repaired},       {"seconds", f.seconds},   {"deliveries_per_s", f.per_second()}};
      };
      rows.push_back({name,
                      "msg/s",
                      s.per_second(),
                      "raw zmq PUB/SUB",
                      config.baselines ? raw.per_second() : std::nan(""),
                      Row::Target::at_least,
                      0.5,
                      config.baselines ? "" : "not run (--switchboard-only)",
                      {{"kind", "fanout"}, {"switchboard", fan_json(s)}, {"baseline", fan_json(raw)}}});
    }

    // ---- a subscriber of many idle rooms: what following costs while nothing happens ------
    if (section("idle")) {
      progress("a subscriber following " + std::to_string(config.idle_rooms) + " idle rooms");
      IdleFollowing f = switchboard_idle_following(config);
      note_error("idle rooms", f.error);
      // Until issue 22 the client asked every quiet room's last seq every 250 ms.
      const double polling = static_cast<double>(f.rooms) * 4;
      const json details = {{"kind", "idle_following"},
                            {"rooms", f.rooms},
                            {"switchboard",
                             {{"requests_per_s", f.requests_per_s},
                              {"heads_events_per_s", f.heads_per_s},
                              {"requests_to_settle", f.settle_requests}}},
                            {"baseline", {{"requests_per_s", polling}}}};
      const std::string name = "subscriber of " + std::to_string(f.rooms / 1000) + "k idle rooms";
      rows.push_back({name + ": requests sent", "req/s", f.requests_per_s, "polling each room every 250 ms", polling,
                      Row::Target::none, 0, "", details});
      rows.push_back({name + ": heads events received", "msg/s", f.heads_per_s, "-", std::nan(""), Row::Target::none,
                      0, "", details});
    }

    // ---- read state: a user's room list with unread counts, and mark_read -----------------
    if (section("readstate")) {
      progress("read state: a user in " + std::to_string(config.readstate_rooms) + " rooms");
      ReadState r = switchboard_read_state(config);
      note_error("read state", r.error);
      const Throughput raw = raw_lmdb_append(config, Durability::nosync, 1000, 8);
      note_error("raw LMDB append of markers", raw.error);
      const json details = {{"kind", "read_state"},
                            {"rooms", r.rooms},
                            {"switchboard",
                             {{"summary", to_json(r.summary)},
                              {"summary_p50_us", r.summary.p50_us},
                              {"summary_p99_us", r.summary.p99_us},
                              {"mark_read_per_s", r.mark_read_per_s}}},
                            {"baseline", {{"raw_lmdb_8_byte_appends_per_s", raw.per_second()}}}};
      const std::string one = "rooms of a user in " + std::to_string(r.rooms) + " rooms, with summaries";
      rows.push_back({one + " p50", "us", r.summary.p50_us, "the target, 5 ms on one node", 5000.0,
                      Row::Target::at_most, 1.0, "", details});
      rows.push_back({one + " p99", "us", r.summary.p99_us, "-", std::nan(""), Row::Target::none, 0, "", details});
      rows.push_back({"mark_read, pipelined, one client", "msg/s", r.mark_read_per_s,
                      "raw LMDB: 8-byte records, txns of 1000", raw.per_second(), Row::Target::none, 0, "", details});

      progress("read state: a user in " + std::to_string(config.readstate_rooms) + " rooms over three nodes");
      ReadState three = switchboard_read_state_three_nodes(config);
      note_error("read state over three nodes", three.error);
      const json spread = {{"kind", "read_state_three_nodes"},
                           {"rooms", three.rooms},
                           {"rooms_owned", three.rooms_of},
                           {"asked_of", "a"},
                           {"switchboard", {{"summary", to_json(three.summary)}}}};
      const std::string many =
          "rooms of a user in " + std::to_string(three.rooms) + " rooms over 3 nodes, with summaries";
      rows.push_back({many + " p50", "us", three.summary.p50_us, "the target, 10 ms across 3 nodes", 10000.0,
                      Row::Target::at_most, 1.0, "", spread});
      rows.push_back({many + " p99", "us", three.summary.p99_us, "-", std::nan(""), Row::Target::none, 0, "", spread});
    }

    // ---- CURVE on against off: what encryption and authentication cost ------------------
    if (section("curve")) {
      const Durability d = Durability::nosync;  // an fsync per batch would hide the cost of the crypto
      for (int n : {1, 16}) {
        const std::string what = publishers_text(n) + ", " + bytes_text(config.payload_bytes);
        progress("durable publish nosync, CURVE off, " + what);
        const Throughput off = switchboard_throughput(config, d, n, config.payload_bytes, false);
        note_error("durable publish nosync, CURVE off, " + what, off.error);
        progress("durable publish nosync, CURVE on, " + what);
        const Throughput on = switchboard_throughput(config, d, n, config.payload_bytes, true);
        note_error("durable publish nosync, CURVE on, " + what, on.error);
        rows.push_back({"durable publish nosync, CURVE on, " + what, "msg/s", on.per_second(), "the same, CURVE off",
                        off.per_second(), Row::Target::none, 0, "",
                        {{"kind", "curve"}, {"publishers", n}, {"switchboard", to_json(on)}, {"baseline", to_json(off)}}});
      }
      progress("publish->delivery latency nosync, CURVE off, idle");
      const DeliveryLatency off = switchboard_delivery(config, d, 0, false);
      note_error("latency, CURVE off", off.error);
      progress("publish->delivery latency nosync, CURVE on, idle");
      const DeliveryLatency on = switchboard_delivery(config, d, 0, true);
      note_error("latency, CURVE on", on.error);
      const json details = {{"kind", "curve"}, {"switchboard", to_json(on.latency)}, {"baseline", to_json(off.latency)}};
      rows.push_back({"publish->delivery nosync, CURVE on, idle p50", "us", on.latency.p50_us, "the same, CURVE off",
                      off.latency.p50_us, Row::Target::none, 0, "", details});
      rows.push_back({"publish->delivery nosync, CURVE on, idle p99", "us", on.latency.p99_us, "the same, CURVE off",
                      off.latency.p99_us, Row::Target::none, 0, "", details});
    }

    // ---- bodies sealed at rest against in clear: what the store key costs ----------------
    if (section("sealed")) {
      for (const Durability d : {Durability::nosync, Durability::sync})
        for (int n : {1, 16}) {
          const std::string what = std::string(durability_name(d)) + ", " + publishers_text(n) + ", " +
                                   bytes_text(config.payload_bytes);
          progress("durable publish " + what + ", bodies in clear");
          const Throughput clear = switchboard_throughput(config, d, n, config.payload_bytes);
          note_error("durable publish " + what + ", bodies in clear", clear.error);
          progress("durable publish " + what + ", bodies sealed");
          const Throughput sealed = switchboard_throughput(config, d, n, config.payload_bytes, false, true);
          note_error("durable publish " + what + ", bodies sealed", sealed.error);
          rows.push_back({"durable publish " + what + ", bodies sealed", "msg/s", sealed.per_second(),
                          "the same, bodies in clear", clear.per_second(), Row::Target::none, 0, "",
                          {{"kind", "sealed"}, {"durability", durability_name(d)}, {"publishers", n},
                           {"switchboard", to_json(sealed)}, {"baseline", to_json(clear)}}});
        }
    }

    // ---- history replay -------------------------------------------------------------------
    if (section("history")) {
      progress("history replay (" + std::to_string(config.history_messages) + " messages)");
      HistoryReplay h = switchboard_history(config);
      note_error("history replay", h.error);
      note_error("raw LMDB cursor scan", h.raw.error);
      json hist = {
          {"kind", "history"},
          {"messages", h.messages},
          {"page", config.history_page},
          {"fill_seconds", h.fill_seconds},
          {"switchboard", {{"newest_per_s", h.newest_per_s}, {"all_per_s", h.all_per_s}}},
          {"baseline",
           {{"newest_per_s", h.raw.newest_per_s}, {"all_per_s", h.raw.all_per_s}, {"records", h.raw.records}}}};
      rows.push_back({"history newest " + std::to_string(config.history_newest / 1000) + "k, pages of " +
                          std::to_string(config.history_page),
                      "msg/s", h.newest_per_s, "raw LMDB cursor, newest first", h.raw.newest_per_s,
                      Row::Target::at_least, 0.15, "", hist});
      rows.push_back({"history paging through " + std::to_string(config.history_messages / 1000) + "k", "msg/s",
                      h.all_per_s, "raw LMDB cursor, oldest first", h.raw.all_per_s, Row::Target::at_least, 0.3, "",
                      hist});
      hist["page_bytes"] = h.page_bytes;
      hist["raw_zmq_msg_per_s"] = h.raw_zmq_msg_per_s;
      rows.push_back({"history paging through " + std::to_string(config.history_messages / 1000) + "k", "msg/s",
                      h.all_per_s, "raw zmq: the same pages' bytes, two ahead", h.raw_zmq_msg_per_s,
                      Row::Target::none, 0, h.page_bytes == 0 ? "no full page was read" : "", hist});
      progress("history reads while 16 sync publishers commit");
      HistoryUnderLoad l = switchboard_history_under_load(config);
      note_error("history reads under load", l.error);
      json loaded = {{"kind", "history_under_load"},
                     {"page", 100},
                     {"published_during_reads", l.published},
                     {"switchboard", {{"p50_us", l.loaded.p50_us}, {"p99_us", l.loaded.p99_us}, {"samples", l.loaded.samples}}},
                     {"baseline", {{"p50_us", l.idle.p50_us}, {"p99_us", l.idle.p99_us}, {"samples", l.idle.samples}}}};
      rows.push_back({"history read of 100 while 16 sync publishers commit p50", "us", l.loaded.p50_us,
                      "the same read at idle", l.idle.p50_us, Row::Target::at_most, 2.0, "", loaded});
      rows.push_back({"history read of 100 while 16 sync publishers commit p99", "us", l.loaded.p99_us,
                      "the same read at idle", l.idle.p99_us, Row::Target::none, 0, "", loaded});
    }

    // ---- presence and one hop: the benchmarks beside this one, their rows in this table ----
    if (section("presence") || section("cluster")) {
      TempDir dir(config.data_base, "switchboard-bench-more");
      const std::vector<std::string> quick = config.quick ? std::vector<std::string>{"--quick"} : std::vector<std::string>{};
      if (section("presence")) {
        progress("presence_bench");
        SiblingRun p = run_sibling("presence_bench", quick, dir.path());
        note_error("presence_bench", p.error);
        for (const auto& r : p.results) {
          Row row{"presence: " + r.at("workload").get<std::string>(), r.at("unit"), r.at("figure"), "-",
                  std::nan(""), Row::Target::none, 0, "", {{"kind", "presence"}, {"presence_bench", r}}};
          if (!r.at("raw_round_trip").is_null()) row.baseline = "raw zmq round trip", row.value = r.at("raw_round_trip");
          rows.push_back(std::move(row));
        }
        if (!p.results.empty()) notes.push_back("presence: the target of issue 4 is >= 500k heartbeats/s on one node");
      }
      if (section("cluster")) {
        progress("cluster_bench");
        std::vector<std::string> args = quick;
        args.insert(args.end(), {"--dir", config.data_base.string()});
        SiblingRun c = run_sibling("cluster_bench", args, dir.path());
        note_error("cluster_bench", c.error);
        for (const auto& r : c.results) {
          auto figure = [](const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
          // cluster_bench's replication rows: "owner" is ack = local, "forwarded" ack = replicated.
          const std::string workload = r.at("workload").get<std::string>();
          const std::string replicated = "replicated shard: ";
          const bool replication = workload.rfind(replicated, 0) == 0;
          rows.push_back({replication ? "ack = replicated, one replica: " + workload.substr(replicated.size())
                                      : "forwarded one hop: " + workload,
                          r.at("unit"), figure(r.at("forwarded")),
                          replication ? "ack = local (same run)" : "to the owner (same cluster)", figure(r.at("owner")),
                          Row::Target::none, 0, "", {{"kind", "cluster"}, {"cluster_bench", r}}});
        }
      }
    }
  } catch (const std::exception& e) {
    std::printf("  ERROR: %s\n", e.what());
    notes.push_back(std::string("ERROR: ") + e.what());
    failed = true;
  }

  const double suite_seconds = Seconds(SteadyClock::now() - suite_start).count();
  const std::string load_after = loadavg();
  std::vector<std::string> footnotes;
  print_table(rows, footnotes);
  std::printf(
      "\nthroughput: each publisher (Client, DEALER, hiredis or NATS connection) on its own thread keeps %zu\n"
      "  messages in flight; rooms are independent (one room / stream key / subject per publisher).\n"
      "  raw zmq: as many DEALERs (own context each) as publishers to a ROUTER that acks each message, run\n"
      "  just before and just after the Switchboard runs and pooled. raw LMDB: one thread appending records\n"
      "  of the same size in write transactions of the batch shown (the most a group commit holds there).\n"
      "  redis: XADD (the room's stream) + PUBLISH (delivery) per message, pipelined without MULTI, acked at\n"
      "  the PUBLISH reply. nats: JetStream async publish to a file-storage stream, every ack awaited.\n"
      "  Switchboard also deduplicates every publish by its client message id; the peers are run without\n"
      "  (no Nats-Msg-Id).\n"
      "latency: publish() one message at a time, stamped when the subscriber's next() returns it;\n"
      "  @50%% load: another Client publishes into another room at half of the 1-publisher %zu B peak of the\n"
      "  same durability. raw zmq round trip: DEALER->ROUTER echo of %zu B, 2 x %d samples (4 blocks with fresh\n"
      "  threads); @50%% load: another DEALER sends to the same ROUTER at half of the raw 1-connection peak.\n"
      "fan-out: one publisher pipelines into one room; subscribers (one shared ZeroMQ context) are read by two\n"
      "  threads, round robin without blocking; from the first publish until every subscriber has every\n"
      "  message. Switchboard: nosync node, PUB high-water mark %d, gaps repaired from history. raw: PUB/SUB\n"
      "  with no high-water mark (nothing dropped).\n"
      "history: Client::history_page in pages of %u, read in place (paging through: Client::read_history, pages asked ahead); raw: an LMDB cursor over the same file, keys and values touched; raw zmq: a\n"
      "  ROUTER answering each ask with a prepared frame the size of a full page, two asks ahead, over tcp.\n"
      "curve: the same node and clients with CURVE on (every tcp connection encrypted, keys checked by the\n"
      "  ZAP handler) against off, nosync so that fsync does not hide the cost; the other rows run without.\n"
      "sealed: the same node with a store key (XChaCha20-Poly1305 per body, docs/SECURITY.md) against none.\n"
      "read state: one user in every room (100 messages each); the room list with summaries asked 200 times,\n"
      "  each reply checked (every room, no node missing, unread = 100 - read seq); over 3 nodes: nodes a, b, c\n"
      "  in this process, a third of the rooms owned by each, asked of a, which gathers b's and c's.\n"
      "presence and forwarded one hop: presence_bench and cluster_bench, run by this suite (see their own\n"
      "  --help); a forwarded publish is compared with the same publish sent to the room's owner, in a\n"
      "  two-node cluster in one process (median of rounds).\n"
      "percentiles: %s.\n"
      "suite: %.1f s; load average before %s, after %s.\n",
      config.window, config.payload_bytes, config.payload_bytes, config.rtt_samples, sb::transport::Limits{}.pub_sndhwm,
      config.history_page, kPercentileMethod, suite_seconds, load_before.c_str(), load_after.c_str());
  std::printf("durability (what an acknowledged message survives):\n");
  for (const auto& [who, what] : guarantees) std::printf("  %-42s %s\n", who.c_str(), what.c_str());
  for (const auto& [who, what] : versions) std::printf("%s: %s\n", who.c_str(), what.c_str());
  for (const auto& n : footnotes) std::printf("%s\n", n.c_str());
  for (const auto& n : notes) std::printf("note: %s\n", n.c_str());

  json out;
  out["suite"] = {
      {"quick", config.quick},      {"seconds", suite_seconds}, {"cores", std::thread::hardware_concurrency()},
      {"load_before", load_before}, {"load_after", load_after}, {"data_dir_base", config.data_base.string()},
      {"data_filesystem", fs},      {"window", config.window},  {"percentile_method", kPercentileMethod},
      {"durability", guarantees},   {"notes", notes},           {"skipped", footnotes},
      {"peer_versions", versions},  {"cpu", cpu_model()}};
  out["results"] = json::array();
  for (const auto& r : rows) {
    json j = {{"workload", r.workload},    {"unit", r.unit},         {"switchboard", num(r.switchboard)},
              {"baseline", r.baseline},    {"figure", num(r.value)}, {"ratio", num(r.ratio())},
              {"target", r.target_text()}, {"status", r.status()},   {"details", r.details}};
    if (!r.skipped.empty()) j["skipped"] = r.skipped;
    out["results"].push_back(std::move(j));
  }
  std::ofstream file(config.json_path);
  file << out.dump(2) << "\n";
  if (!file) {
    std::printf("cannot write %s\n", config.json_path.c_str());
    return 1;
  }
  std::printf("results written to %s\n", config.json_path.c_str());
  return failed ? 1 : 0;
}
