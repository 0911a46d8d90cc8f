// The pieces of switchboard_bench: its settings, the baselines it runs beside
// Switchboard (raw ZeroMQ, raw LMDB, and the peers users would otherwise pick), and the
// load generator the latency runs share.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "switchboard/persistence/history_store.hpp"
#include "bench_support.hpp"

namespace switchboard::bench {

using persistence::Durability;

inline const char* durability_name(Durability d) { return d == Durability::sync ? "sync" : "nosync"; }

struct Config {
  bool quick = false;
  std::filesystem::path json_path = "bench-results.json";
  std::filesystem::path data_base = std::filesystem::temp_directory_path();
  bool peers = true;      // start nats-server and redis-server for the comparison rows
  std::string only;       // run only this section: throughput, latency, fanout, history, presence, cluster
  bool baselines = true;  // false: Switchboard's runs alone (for profiling)
  bool metrics = false;   // the node keeps its metrics and serves them, as `switchboard run` does
  std::vector<Durability> durabilities = {Durability::sync, Durability::nosync};  // throughput runs

  std::size_t payload_bytes = 100;                // latency, fan-out and history runs
  std::vector<std::size_t> bodies = {100, 1024};  // durable publish throughput runs
  std::size_t window = 1000;                      // messages in flight per connection (pipelining)
  std::vector<int> publishers = {1, 4, 16};       // connections, each on its own thread
  std::vector<int> peer_publishers = {1, 16};     // the subset also run against the peers
  int rtt_warmup = 1000, rtt_samples = 10'000;    // per raw run; each latency baseline pools two
  Seconds throughput_run{2.0};                    // timed part of each throughput run
  int throughput_warmup = 500;                    // publishes per connection before the clock starts
  int latency_warmup = 200, latency_samples = 10'000;
  Seconds latency_max{6.0};    // a latency run stops here even if short of samples
  double load_fraction = 0.5;  // "at 50 % of peak": of the 1-publisher throughput
  std::vector<int> fanout_subscribers = {1, 100, 1000};
  std::size_t fanout_deliveries = 300'000;   // per fan-out run: messages x subscribers
  std::size_t history_messages = 1'000'000;  // paged through, oldest to newest
  std::size_t history_newest = 10'000;       // read newest first, in pages
  std::uint32_t history_page = 1000;         // the node's largest page (Limits)
  int history_rounds = 5;                    // newest-10k reads per measurement
  std::size_t idle_rooms = 10'000;           // followed by one idle subscriber
  Seconds idle_watch{5.0};                   // how long its traffic is counted
  std::size_t readstate_rooms = 1000;        // rooms one user is in (read state)

  void make_quick() {
    quick = true;
    publishers = {1, 16};
    rtt_samples = 2500;
    throughput_run = Seconds(0.5);
    throughput_warmup = 200;
    latency_warmup = 100;
    latency_samples = 2000;
    latency_max = Seconds(1.5);
    fanout_deliveries = 60'000;
    history_messages = 100'000;
    history_rounds = 2;
    idle_rooms = 1000;
    idle_watch = Seconds(2.0);
    readstate_rooms = 200;
  }
};

// ---- raw ZeroMQ (raw_baselines.cpp) ---------------------------------------------------

struct RawRoundTrip {
  std::vector<double> us;  // one sample per round trip, in run order
  double load_per_s = 0;   // the background load actually sent, if any
  std::string error;
};
/// DEALER->ROUTER echo round trips of `config.payload_bytes`, one at a time. With
/// `load_per_s` > 0 another DEALER sends to the same ROUTER at that rate meanwhile.
RawRoundTrip raw_round_trip(const Config& config, double load_per_s = 0);
/// N DEALERs pipelining `bytes`-byte messages (window config.window) to a ROUTER that
/// acks each.
Throughput raw_throughput(const Config& config, int connections, std::size_t bytes);

struct Fanout {
  int subscribers = 0;
  std::size_t messages = 0;      // published into the room
  std::uint64_t deliveries = 0;  // received, over all subscribers
  std::uint64_t repaired = 0;    // Switchboard: of those, delivered from history
  double seconds = 0;            // first publish to last delivery
  double per_second() const { return seconds > 0 ? static_cast<double>(deliveries) / seconds : 0; }
  std::string error;
};
/// One PUB, `subscribers` SUBs over tcp loopback, `messages` messages of
/// config.payload_bytes, received the way the Switchboard fan-out run receives.
Fanout raw_pubsub_fanout(const Config& config, int subscribers, std::size_t messages);

/// Receives on `subscribers` from `threads` threads, each going round its share without
/// blocking (`take(i)` takes what subscriber i has waiting and says whether it is done),
/// yielding after a pass that found nothing. Both fan-out runs receive this way.
void receive_round_robin(int subscribers, int threads, const std::function<bool(int, bool&)>& take);

/// Pages of `page_bytes` asked of a ROUTER over tcp, two ahead as Client::read_history
/// asks them, each answered with the same prepared bytes: what moving a history page
/// costs over ZeroMQ, nothing stored, read or decoded. Pages per second (0: no answer).
double raw_zmq_pages(std::size_t page_bytes, std::size_t pages);

// ---- raw LMDB (raw_baselines.cpp) -----------------------------------------------------

struct RawCommit {
  LatencySummary latency;
  std::string error;
};
/// One write transaction per record of config.payload_bytes, one at a time.
RawCommit raw_lmdb_commit(const Config& config, Durability durability, int samples, Seconds max);
/// Appends records of `bytes` in transactions of `batch` records for config.throughput_run.
Throughput raw_lmdb_append(const Config& config, Durability durability, std::size_t batch, std::size_t bytes);

struct RawScan {
  double newest_per_s = 0;  // the newest config.history_newest records, read backward
  double all_per_s = 0;     // every record, read forward
  std::uint64_t records = 0;
  std::string error;
};
/// Cursor reads of the "messages" table of a Switchboard store at `dir` (the node is
/// stopped): keys and values touched, nothing decoded.
RawScan raw_lmdb_scan(const Config& config, const std::filesystem::path& dir);

// ---- load ------------------------------------------------------------------------------

/// A sender on its own thread, at `rate` messages/s until destroyed. `step(due)` sends
/// up to `due` messages (it may block on its window), takes what has been answered, and
/// returns how many it sent. Built before the thread starts, then used only by it.
class PacedLoad {
 public:
  PacedLoad(double rate, std::function<std::size_t(std::size_t)> step);
  ~PacedLoad();
  PacedLoad(const PacedLoad&) = delete;
  PacedLoad& operator=(const PacedLoad&) = delete;
  /// Stops the thread; returns the rate actually sent, per second.
  double stop();

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
  SteadyClock::time_point start_;
  double achieved_ = 0;
  std::thread thread_;
};

// ---- the peers (peers.cpp) -------------------------------------------------------------

/// What a peer's durability setting guarantees, as printed beside its figures.
struct PeerSetting {
  std::string name;       // "redis XADD+PUBLISH appendfsync always"
  std::string guarantee;  // what an acknowledged message survives
  std::string versions;   // of the server and the client library, once found
};
struct PeerThroughput {
  PeerSetting setting;
  Throughput throughput;
  std::string skipped;  // why there is no figure (peer not built, not startable, ...)
};
/// Redis: `connections` hiredis connections pipelining XADD + PUBLISH per message
/// (window config.window) to a redis-server this run starts; the durable comparison
/// uses appendfsync always, the relaxed one everysec.
PeerThroughput redis_throughput(const Config& config, Durability like, int connections, std::size_t bytes);
/// NATS JetStream, file storage: `connections` connections publishing asynchronously
/// (window config.window, every ack awaited) to a nats-server this run starts.
PeerThroughput nats_throughput(const Config& config, Durability like, int connections, std::size_t bytes);

}  // namespace switchboard::bench
