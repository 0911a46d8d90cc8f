// The baselines switchboard_bench runs beside Switchboard: plain ZeroMQ (DEALER->ROUTER,
// PUB/SUB) and plain LMDB (commits, batched appends, cursor scans), on the same machine
// and in the same run.
#include <cerrno>
#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "suite.hpp"

namespace switchboard::bench {
namespace {

// ---- raw ZeroMQ -------------------------------------------------------------------------

/// A ROUTER on its own thread (and its own context, as a Node has) that answers every
/// message: with the message itself (echo), with an 8-byte ack, or with the same
/// prepared reply (page).
class RawServer {
 public:
  enum class Answer { echo, ack, page };

  explicit RawServer(Answer answer, std::string page = {})
      : answer_(answer), page_(std::move(page)), context_(1), router_(context_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    // At the high-water mark a plain ROUTER drops silently; mandatory makes send() block
    // instead, so no ack is lost (a pipe may refuse before `window` messages are queued).
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~RawServer() {
    stop_.store(true);
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void run() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    std::uint64_t acks = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      for (int n = 0; n < 4096; ++n) {
        zmq::message_t id, body;
        if (!router_.recv(id, zmq::recv_flags::dontwait)) break;
        (void)router_.recv(body, zmq::recv_flags::none);  // the rest of a message is already here
        try {
          router_.send(id, zmq::send_flags::sndmore);
          if (answer_ == Answer::echo) {
            router_.send(body, zmq::send_flags::none);
          } else if (answer_ == Answer::page) {
            router_.send(zmq::buffer(page_), zmq::send_flags::none);
          } else {
            ++acks;
            router_.send(zmq::buffer(&acks, sizeof acks), zmq::send_flags::none);
          }
        } catch (const zmq::error_t& e) {
          if (e.num() != EHOSTUNREACH) throw;  // a client that has gone (a load run ended): nothing to answer
        }
      }
    }
  }

  Answer answer_;
  std::string page_;
  zmq::context_t context_;
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

zmq::socket_t raw_dealer(zmq::context_t& context, const std::string& endpoint) {
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 5000);  // a lost answer fails the run instead of hanging it
  dealer.connect(endpoint);
  return dealer;
}

/// A DEALER on its own thread and context that sends to `endpoint` at a steady rate
/// (window config.window), for the "under load" round trips.
class RawLoad {
 public:
  RawLoad(const Config& config, const std::string& endpoint, double rate)
      : payload_(config.payload_bytes, 'x'),
        window_(config.window),
        context_(1),
        dealer_(raw_dealer(context_, endpoint)),
        load_(rate, [this](std::size_t due) { return step(due); }) {}
  double stop() { return load_.stop(); }

 private:
  std::size_t step(std::size_t due) {
    std::size_t sent = 0;
    zmq::message_t m;
    while (in_flight_ > 0 && dealer_.recv(m, zmq::recv_flags::dontwait)) --in_flight_;
    while (sent < due && in_flight_ < window_) {
      dealer_.send(zmq::buffer(payload_), zmq::send_flags::none);
      ++in_flight_, ++sent;
    }
    return sent;
  }

  std::string payload_;
  std::size_t window_;
  std::size_t in_flight_ = 0;
  zmq::context_t context_;
  zmq::socket_t dealer_;
  PacedLoad load_;  // last: its thread stops before the socket goes
};

}  // namespace

PacedLoad::PacedLoad(double rate, std::function<std::size_t(std::size_t)> step) : start_(SteadyClock::now()) {
  thread_ = std::thread([this, rate, step = std::move(step)] {
    std::uint64_t sent = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      const double due = rate * Seconds(SteadyClock::now() - start_).count() - static_cast<double>(sent);
      sent += step(due >= 1 ? static_cast<std::size_t>(due) : 0);
      sent_.store(sent, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // sends in bursts of ~0.2 ms of load
    }
  });
}
PacedLoad::~PacedLoad() { stop(); }
double PacedLoad::stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    thread_.join();
    const double seconds = Seconds(SteadyClock::now() - start_).count();
    achieved_ = seconds > 0 ? static_cast<double>(sent_.load()) / seconds : 0;
  }
  return achieved_;
}

/// Round trips in a few blocks, each with a fresh server thread and sockets: where the
/// scheduler puts the threads (same core or not) moves a block's median by 2x on a small VM.
RawRoundTrip raw_round_trip(const Config& config, double load_per_s) {
  constexpr int kBlocks = 4;
  const std::string payload(config.payload_bytes, 'x');
  RawRoundTrip result;
  double achieved = 0;
  result.us.reserve(static_cast<std::size_t>(config.rtt_samples));
  for (int block = 0; block < kBlocks && result.error.empty(); ++block) {
    RawServer server(RawServer::Answer::echo);
    zmq::context_t context(1);
    auto dealer = raw_dealer(context, server.endpoint());
    std::optional<RawLoad> load;
    if (load_per_s > 0) load.emplace(config, server.endpoint(), load_per_s);
    const int warmup = config.rtt_warmup / kBlocks, samples = config.rtt_samples / kBlocks;
    for (int i = 0; i < warmup + samples; ++i) {
      zmq::message_t reply;
      auto t0 = SteadyClock::now();
      dealer.send(zmq::buffer(payload), zmq::send_flags::none);
      if (!dealer.recv(reply, zmq::recv_flags::none)) {
        result.error = "no echo within 5 s";
        break;
      }
      auto t1 = SteadyClock::now();
      if (i >= warmup) result.us.push_back(micros(t1 - t0));
    }
    if (load) achieved += load->stop();
  }
  result.load_per_s = achieved / kBlocks;
  return result;
}

double raw_zmq_pages(std::size_t page_bytes, std::size_t pages) {
  RawServer server(RawServer::Answer::page, std::string(page_bytes, 'x'));
  zmq::context_t context(1);
  auto dealer = raw_dealer(context, server.endpoint());
  const char ask[16] = {};
  zmq::message_t reply;
  std::size_t asked = 0, got = 0;
  // Warm: the connection is up and one page has crossed before the clock starts.
  dealer.send(zmq::buffer(ask), zmq::send_flags::none);
  if (!dealer.recv(reply, zmq::recv_flags::none)) return 0;
  const auto start = SteadyClock::now();
  for (; asked < 2 && asked < pages; ++asked) dealer.send(zmq::buffer(ask), zmq::send_flags::none);
  while (got < pages) {
    if (!dealer.recv(reply, zmq::recv_flags::none)) return 0;  // no answer within 5 s
    ++got;
    if (asked < pages) {
      dealer.send(zmq::buffer(ask), zmq::send_flags::none);
      ++asked;
    }
  }
  return static_cast<double>(pages) / Seconds(SteadyClock::now() - start).count();
}

Throughput raw_throughput(const Config& config, int connections, std::size_t bytes) {
  RawServer server(RawServer::Answer::ack);
  const std::string payload(bytes, 'x');
  struct Conn {
    zmq::context_t context{1};  // one context (one I/O thread) per connection, as a Client has
    std::optional<zmq::socket_t> dealer;
    std::uint64_t acked = 0;
    std::string error;
  };
  std::vector<Conn> conns(static_cast<std::size_t>(connections));
  Throughput t;
  t.connections = connections;
  t.seconds = run_threads(
      connections, config.throughput_run,
      [&](int i) {
        Conn& c = conns[static_cast<std::size_t>(i)];
        c.dealer = raw_dealer(c.context, server.endpoint());
        zmq::message_t m;
        for (int k = 0; k < config.throughput_warmup; ++k) {
          c.dealer->send(zmq::buffer(payload), zmq::send_flags::none);
          (void)c.dealer->recv(m, zmq::recv_flags::none);
        }
      },
      [&](int i, SteadyClock::time_point deadline) {
        Conn& c = conns[static_cast<std::size_t>(i)];
        std::size_t in_flight = 0;
        zmq::message_t m;
        for (;;) {
          const bool sending = SteadyClock::now() < deadline;
          if (!sending && in_flight == 0) break;
          while (sending && in_flight < config.window) {
            c.dealer->send(zmq::buffer(payload), zmq::send_flags::none);
            ++in_flight;
          }
          if (!c.dealer->recv(m, zmq::recv_flags::none)) {
            c.error = "no ack within 5 s";
            break;
          }
          --in_flight, ++c.acked;
          while (in_flight > 0 && c.dealer->recv(m, zmq::recv_flags::dontwait)) --in_flight, ++c.acked;
        }
      });
  for (auto& c : conns) {
    t.acked += c.acked;
    if (!c.error.empty()) t.error = c.error;
  }
  return t;
}

void receive_round_robin(int subscribers, int threads, const std::function<bool(int, bool&)>& take) {
  threads = std::max(1, std::min(threads, subscribers));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<int> mine;
      for (int i = t; i < subscribers; i += threads) mine.push_back(i);
      while (!mine.empty()) {
        bool any = false;
        for (std::size_t k = 0; k < mine.size();) {
          if (take(mine[k], any)) {
            mine[k] = mine.back();
            mine.pop_back();
          } else {
            ++k;
          }
        }
        if (!any) std::this_thread::yield();
      }
    });
  for (auto& t : pool) t.join();
}

Fanout raw_pubsub_fanout(const Config& config, int subscribers, std::size_t messages) {
  Fanout result;
  result.subscribers = subscribers;
  result.messages = messages;
  // Publisher and subscribers each have a context, as a node and its clients do.
  zmq::context_t pub_context(1), sub_context(1);
  sub_context.set(zmq::ctxopt::max_sockets, subscribers + 64);
  zmq::socket_t pub(pub_context, zmq::socket_type::pub);
  pub.set(zmq::sockopt::linger, 0);
  pub.set(zmq::sockopt::sndhwm, 0);  // nothing dropped: every message reaches every subscriber
  pub.bind("tcp://127.0.0.1:*");
  const std::string endpoint = pub.get(zmq::sockopt::last_endpoint);
  std::vector<zmq::socket_t> subs;
  subs.reserve(static_cast<std::size_t>(subscribers));
  for (int i = 0; i < subscribers; ++i) {
    subs.emplace_back(sub_context, zmq::socket_type::sub);
    subs.back().set(zmq::sockopt::linger, 0);
    subs.back().set(zmq::sockopt::rcvhwm, 0);
    subs.back().set(zmq::sockopt::subscribe, "room");
    subs.back().connect(endpoint);
  }
  // Subscriptions reach the PUB asynchronously: send "hello" until every SUB has one.
  std::vector<bool> joined(static_cast<std::size_t>(subscribers), false);
  int waiting = subscribers;
  const auto give_up = SteadyClock::now() + std::chrono::seconds(20);
  while (waiting > 0) {
    if (SteadyClock::now() > give_up) {
      result.error = std::to_string(waiting) + " subscribers never joined";
      return result;
    }
    pub.send(zmq::str_buffer("room"), zmq::send_flags::sndmore);
    pub.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    zmq::message_t topic, body;
    for (int i = 0; i < subscribers; ++i)
      while (subs[static_cast<std::size_t>(i)].recv(topic, zmq::recv_flags::dontwait)) {
        (void)subs[static_cast<std::size_t>(i)].recv(body, zmq::recv_flags::none);
        if (!joined[static_cast<std::size_t>(i)]) joined[static_cast<std::size_t>(i)] = true, --waiting;
      }
  }

  const std::string payload(config.payload_bytes, 'x');  // "hello"s still queued are skipped by size
  std::vector<std::uint64_t> got(static_cast<std::size_t>(subscribers), 0);
  std::atomic<std::uint64_t> deliveries{0};
  const auto start = SteadyClock::now();
  std::thread publisher([&] {
    for (std::size_t i = 0; i < messages; ++i) {
      pub.send(zmq::str_buffer("room"), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(payload), zmq::send_flags::none);
    }
  });
  receive_round_robin(subscribers, 2, [&](int i, bool& any) {
    auto& sub = subs[static_cast<std::size_t>(i)];
    auto& n = got[static_cast<std::size_t>(i)];
    zmq::message_t topic, body;
    std::uint64_t taken = 0;
    while (n < messages && sub.recv(topic, zmq::recv_flags::dontwait)) {
      (void)sub.recv(body, zmq::recv_flags::none);
      if (body.size() == payload.size()) ++n, ++taken;
    }
    if (taken) any = true, deliveries.fetch_add(taken, std::memory_order_relaxed);
    return n >= messages;
  });
  result.seconds = Seconds(SteadyClock::now() - start).count();
  publisher.join();
  result.deliveries = deliveries.load();
  return result;
}

// ---- raw LMDB -----------------------------------------------------------------------------

namespace {

/// A plain LMDB environment with one table, closed with the object.
class RawEnv {
 public:
  RawEnv(const std::filesystem::path& dir, unsigned flags, const char* table) {
    check(mdb_env_create(&env_), "mdb_env_create");
    check(mdb_env_set_mapsize(env_, std::size_t{16} << 30), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env_, 8), "mdb_env_set_maxdbs");
    check(mdb_env_open(env_, dir.c_str(), flags | MDB_NOTLS, 0644), "mdb_env_open");
    MDB_txn* txn = nullptr;
    const bool read_only = flags & MDB_RDONLY;
    check(mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0u, &txn), "mdb_txn_begin");
    if (int rc = mdb_dbi_open(txn, table, read_only ? 0u : MDB_CREATE, &dbi_); rc) {
      mdb_txn_abort(txn);
      check(rc, "mdb_dbi_open");
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  ~RawEnv() {
    if (env_) mdb_env_close(env_);
  }
  RawEnv(const RawEnv&) = delete;
  RawEnv& operator=(const RawEnv&) = delete;
  MDB_env* env() const { return env_; }
  MDB_dbi dbi() const { return dbi_; }

  static void check(int rc, const char* what) {
    if (rc != MDB_SUCCESS) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};

/// A write transaction that aborts unless committed.
class RawWrite {
 public:
  explicit RawWrite(const RawEnv& env) { RawEnv::check(mdb_txn_begin(env.env(), nullptr, 0, &txn_), "mdb_txn_begin"); }
  ~RawWrite() {
    if (txn_) mdb_txn_abort(txn_);
  }
  RawWrite(const RawWrite&) = delete;
  RawWrite& operator=(const RawWrite&) = delete;
  /// Puts a record under the big-endian key `seq` (so records append in key order).
  void put(const RawEnv& env, std::uint64_t seq, const std::string& value) {
    std::uint64_t key = __builtin_bswap64(seq);
    MDB_val k{sizeof key, &key}, v{value.size(), const_cast<char*>(value.data())};
    RawEnv::check(mdb_put(txn_, env.dbi(), &k, &v, MDB_NOOVERWRITE), "mdb_put");
  }
  void commit() {
    MDB_txn* txn = std::exchange(txn_, nullptr);
    RawEnv::check(mdb_txn_commit(txn), "mdb_txn_commit");
  }

 private:
  MDB_txn* txn_ = nullptr;
};

unsigned write_flags(Durability durability) { return durability == Durability::nosync ? MDB_NOSYNC : 0u; }

}  // namespace

/// One write transaction per record (one put, then commit), as a durable publish at idle
/// load needs: the storage floor under publish->delivery latency.
RawCommit raw_lmdb_commit(const Config& config, Durability durability, int samples, Seconds max) {
  RawCommit result;
  try {
    TempDir dir(config.data_base, "switchboard-bench");
    RawEnv env(dir.path(), write_flags(durability), nullptr);
    const std::string value(config.payload_bytes, 'x');
    std::vector<double> us;
    const int warmup = 20;
    const auto begin = SteadyClock::now();
    for (int i = 0; i < warmup + samples; ++i) {
      if (i >= warmup && SteadyClock::now() - begin > max) break;
      auto t0 = SteadyClock::now();
      RawWrite txn(env);
      txn.put(env, static_cast<std::uint64_t>(i), value);
      txn.commit();
      if (i >= warmup) us.push_back(micros(SteadyClock::now() - t0));
    }
    result.latency = summarize(std::move(us));
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

Throughput raw_lmdb_append(const Config& config, Durability durability, std::size_t batch, std::size_t bytes) {
  Throughput t;
  t.connections = 1;
  try {
    TempDir dir(config.data_base, "switchboard-bench");
    RawEnv env(dir.path(), write_flags(durability), nullptr);
    const std::string value(bytes, 'x');
    std::uint64_t seq = 0;
    const auto start = SteadyClock::now();
    const auto deadline = start + std::chrono::duration_cast<SteadyClock::duration>(config.throughput_run);
    while (SteadyClock::now() < deadline) {
      RawWrite txn(env);
      for (std::size_t i = 0; i < batch; ++i) txn.put(env, ++seq, value);
      txn.commit();
    }
    t.seconds = Seconds(SteadyClock::now() - start).count();
    t.acked = seq;
  } catch (const std::exception& e) {
    t.error = e.what();
  }
  return t;
}

RawScan raw_lmdb_scan(const Config& config, const std::filesystem::path& dir) {
  RawScan result;
  try {
    RawEnv env(dir, MDB_RDONLY, "messages");
    MDB_txn* txn = nullptr;
    RawEnv::check(mdb_txn_begin(env.env(), nullptr, MDB_RDONLY, &txn), "mdb_txn_begin");
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(txn, env.dbi(), &cursor); rc) {
      mdb_txn_abort(txn);
      RawEnv::check(rc, "mdb_cursor_open");
    }
    // Touch every key and value byte count, so the reads cannot be skipped.
    std::uint64_t touched = 0;
    auto read = [&](MDB_cursor_op first, MDB_cursor_op next, std::size_t limit) {
      MDB_val k, v;
      std::size_t n = 0;
      for (int rc = mdb_cursor_get(cursor, &k, &v, first); rc == MDB_SUCCESS && n < limit;
           rc = mdb_cursor_get(cursor, &k, &v, next), ++n)
        touched += k.mv_size + v.mv_size + static_cast<unsigned char>(static_cast<const char*>(v.mv_data)[0]);
      return n;
    };
    auto start = SteadyClock::now();
    std::size_t newest = 0;
    for (int r = 0; r < config.history_rounds; ++r) newest += read(MDB_LAST, MDB_PREV, config.history_newest);
    result.newest_per_s = static_cast<double>(newest) / Seconds(SteadyClock::now() - start).count();
    start = SteadyClock::now();
    result.records = read(MDB_FIRST, MDB_NEXT, SIZE_MAX);
    result.all_per_s = static_cast<double>(result.records) / Seconds(SteadyClock::now() - start).count();
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    if (touched == 0) result.error = "the store holds no messages";
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

}  // namespace switchboard::bench
