// What the benchmarks share: percentiles and latency summaries, temporary data
// directories, and the facts about the machine printed beside the figures.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchboard/persistence/history_store.hpp"

namespace switchboard::bench {

/// A store in `dir` opened to be filled straight (no fsync, a map of up to 64 GiB),
/// before a node opens it.
inline persistence::HistoryStore open_for_fill(const std::filesystem::path& dir) {
  persistence::StoreOptions o;
  o.dir = dir;
  o.durability = persistence::Durability::nosync;
  o.max_map_bytes = std::size_t{64} << 30;
  auto store = persistence::HistoryStore::open(o);
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

using SteadyClock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
using json = nlohmann::json;

inline constexpr const char* kPercentileMethod =
    "exact: every sample kept and sorted (no histogram buckets), nearest rank: p-th percentile = "
    "sorted[ceil(p/100 * n) - 1]";

/// Nearest-rank percentile of `sorted` (ascending). NaN if empty.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return std::nan("");
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

struct LatencySummary {
  std::size_t samples = 0;
  double p50_us = std::nan(""), p99_us = std::nan(""), p999_us = std::nan(""), min_us = std::nan(""),
         max_us = std::nan("");
};

inline LatencySummary summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  LatencySummary s;
  s.samples = us.size();
  if (us.empty()) return s;
  s.p50_us = percentile(us, 50);
  s.p99_us = percentile(us, 99);
  s.p999_us = percentile(us, 99.9);
  s.min_us = us.front();
  s.max_us = us.back();
  return s;
}

inline double micros(SteadyClock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
/// A fresh directory under `base`, removed with the object.
class TempDir {
 public:
  TempDir(const std::filesystem::path& base, const std::string& prefix) {
    std::string pattern = (base / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp in " + base.string() + " failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string filesystem_of(const std::filesystem::path& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs (fsync is a no-op: sync figures are not durable-disk figures)";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "f_type 0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}
inline std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}
/// The CPU's model name, as /proc/cpuinfo gives it.
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}
inline std::string format_value(double v, const std::string& unit) {
  char buf[32];
  if (std::isnan(v)) return "n/a";
  if (unit == "msg/s") std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
/// A figure for JSON: null when there is none (NaN).
inline json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

inline json to_json(const LatencySummary& s) {
  return {{"samples", s.samples},         {"p50_us", num(s.p50_us)}, {"p99_us", num(s.p99_us)},
          {"p99_9_us", num(s.p999_us)},    {"min_us", num(s.min_us)}, {"max_us", num(s.max_us)}};
}

/// A tcp port on 127.0.0.1 that was free a moment ago: the kernel's pick for port 0.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free tcp port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// The topology file of `nodes` on loopback ports free a moment ago, with data under
/// `dir`: each node owns one chat shard, s1 the first node's, s2 the second's, ..., and
/// `s1_lines` are more lines for s1's entry (its replicas and ack mode). For benchmarks
/// that run the nodes in their own process.
inline std::string loopback_topology(const std::filesystem::path& dir, const std::string& durability,
                                     const std::vector<std::string>& nodes, const std::string& s1_lines = {}) {
  std::set<int> used;
  auto endpoint = [&] {
    for (;;)
      if (int p = free_port(); used.insert(p).second) return "\"tcp://127.0.0.1:" + std::to_string(p) + "\"";
  };
  std::ostringstream out;
  for (const auto& name : nodes) {
    out << "[nodes." << name << "]\n";
    for (const char* key : {"client", "publish", "presence", "presence_pub", "peer", "presence_peer"})
      out << key << " = " << endpoint() << "\n";
    out << "data = '" << (dir / name).string() << "'\n";
    out << "durability = \"" << durability << "\"\n";
  }
  for (std::size_t i = 0; i < nodes.size(); ++i)
    out << "[[shards]]\nname = \"s" << i + 1 << "\"\nowner = \"" << nodes[i] << "\"\n" << (i == 0 ? s1_lines : "");
  return out.str();
}

/// Nodes a and b: shard s1 (owner a, and `s1_lines`) and s2 (owner b).
inline std::string two_node_topology(const std::filesystem::path& dir, const std::string& durability,
                                     const std::string& s1_lines) {
  return loopback_topology(dir, durability, {"a", "b"}, s1_lines);
}

/// What a throughput run measured, over all its connections.
struct Throughput {
  int connections = 0;
  std::uint64_t acked = 0;
  std::uint64_t errors = 0;
  std::uint64_t duplicates = 0;  // Switchboard: acks of a retry (the first reply was lost)
  double seconds = 0;
  double per_second() const { return seconds > 0 ? static_cast<double>(acked) / seconds : 0; }
  std::string error;
};

inline json to_json(const Throughput& t) {
  json j{{"connections", t.connections}, {"acked", t.acked},     {"errors", t.errors},
         {"duplicates", t.duplicates},   {"seconds", t.seconds}, {"msgs_per_s", t.per_second()}};
  if (!t.error.empty()) j["error"] = t.error;
  return j;
}

/// Runs `setup(i)`, then `work(i, deadline)`, on `n` threads started together; each returns
/// when its connection is drained. The run lasts from the common start to the last return.
template <class Setup, class Work>
double run_threads(int n, Seconds duration, Setup setup, Work work) {
  std::barrier start_line(n + 1);
  std::vector<SteadyClock::time_point> ends(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  SteadyClock::time_point start{};
  std::atomic<bool> started{false};
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      setup(i);  // connect and warm up before the clock starts
      start_line.arrive_and_wait();
      while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
      work(i, start + std::chrono::duration_cast<SteadyClock::duration>(duration));
      ends[static_cast<std::size_t>(i)] = SteadyClock::now();
    });
  start_line.arrive_and_wait();
  start = SteadyClock::now();
  started.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  return Seconds(*std::max_element(ends.begin(), ends.end()) - start).count();
}

}  // namespace switchboard::bench
