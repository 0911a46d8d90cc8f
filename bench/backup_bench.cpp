// Hot backup (switchboard backup, docs/PROTOCOL.md 4.12), measured: a backup of a
// running node's store through the node, received by a client in this process and
// written to a directory, beside LMDB's own compacting copy of the same store (what
// `mdb_copy -c` does: mdb_env_copy2 with MDB_CP_COMPACT), and what publishers get while
// the backup runs against what they get without one.
//
//   build/bench/backup_bench [--mb N] [--rounds N] [--dir DIR] [--publisher on|off] [--rate N] [--rooms N]
//   build/bench/backup_bench --fill-only DIR [--mb N] [--rooms N]   (a store to try commands on)
#include <fcntl.h>
#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "switchboard/client/client.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "bench_nodes.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace fs = std::filesystem;
using namespace sb::bench;

struct Config {
  std::uint64_t megabytes = 1000;  ///< bodies stored before the backups
  int rounds = 2;
  bool publisher = true;  ///< a publisher goes on during the backup
  std::uint64_t rate = 0;  ///< its messages a second (0: as fast as it can)
  int rooms = 100;
  fs::path fill_only;     ///< only fill a store there (for `switchboard export`, by hand)
  fs::path base = fs::temp_directory_path();
};

double seconds_since(SteadyClock::time_point begin) { return Seconds(SteadyClock::now() - begin).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

/// `megabytes` of 1000-byte bodies in `rooms` rooms, written straight into the store.
void fill(const fs::path& dir, std::uint64_t megabytes, int rooms) {
  auto store = open_for_fill(dir);
  std::vector<sb::persistence::Record> batch;
  const int kRooms = rooms;
  for (int r = 0; r < kRooms; ++r) batch.push_back(sb::persistence::CreateRoom{"room-" + std::to_string(r), "ann", 1});
  if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
  batch.clear();
  const std::string body(1000, 'x');
  const std::uint64_t messages = megabytes * 1000;
  for (std::uint64_t i = 0; i < messages; ++i) {
    batch.push_back(sb::persistence::StoredMessage{"room-" + std::to_string(i % kRooms), i / kRooms + 1, "ann", 1000 + i,
                                                   body, "c-" + std::to_string(i)});
    if (batch.size() == 10000 || i + 1 == messages) {
      if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
      batch.clear();
    }
  }
}

/// What `mdb_copy -c` does: the store copied, compacted, into `out`; seconds.
double lmdb_compact_copy(const fs::path& store, const fs::path& out) {
  fs::create_directories(out);
  MDB_env* env = nullptr;
  mdb_env_create(&env);
  mdb_env_set_maxdbs(env, 16);
  mdb_env_set_mapsize(env, std::size_t{64} << 30);
  if (mdb_env_open(env, store.c_str(), MDB_RDONLY, 0644) != 0) throw std::runtime_error("mdb_env_open");
  const auto begin = SteadyClock::now();
  if (mdb_env_copy2(env, out.c_str(), MDB_CP_COMPACT) != 0) throw std::runtime_error("mdb_env_copy2");
  const double took = seconds_since(begin);
  mdb_env_close(env);
  return took;
}

/// fsync of `file` (what a backup needs before it can be trusted); seconds.
double fsync_file(const fs::path& file) {
  const auto begin = SteadyClock::now();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) throw std::runtime_error("fsync " + file.string());
  ::close(fd);
  return seconds_since(begin);
}

/// Publishes pipelined into one room until `stop`; counts acks. With a `rate`
/// (messages a second), paced to it; without, as fast as 1000 in flight allow.
struct Publisher {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0}, errors{0};
  std::thread thread;
  explicit Publisher(const std::string& endpoint, std::uint64_t rate = 0) {  ///< "": none
    if (endpoint.empty()) return;
    thread = std::thread([this, endpoint, rate] {
      sb::client::ClientOptions o;
      o.endpoint = endpoint;
      sb::client::Client c(o);
      const std::string body(100, 'p');
      const auto start = SteadyClock::now();
      for (std::uint64_t sent = 0; !stop.load(); ++sent) {
        if (rate > 0 && sent % 100 == 0)  // in steps of 100: the next step's time
          std::this_thread::sleep_until(start + std::chrono::duration_cast<SteadyClock::duration>(
                                                    Seconds(static_cast<double>(sent) / static_cast<double>(rate))));
        c.publish_async("live", "bob", body, [this](const auto& ack) { ack ? ++acked : ++errors; });
      }
      c.wait_all();
    });
  }
  ~Publisher() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--mb") config.megabytes = std::max<std::uint64_t>(1, std::stoull(v));
    else if (a == "--rounds") config.rounds = std::max(1, std::stoi(v));
    else if (a == "--dir") config.base = v;
    else if (a == "--publisher") config.publisher = v != "off";
    else if (a == "--rate") config.rate = std::stoull(v);
    else if (a == "--rooms") config.rooms = std::max(1, std::stoi(v));
    else if (a == "--fill-only") config.fill_only = v;
    else {
      std::fprintf(stderr, "usage: %s [--mb N] [--rounds N] [--dir DIR] [--publisher on|off] [--rate N] [--rooms N] [--fill-only DIR]\n", argv[0]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  std::printf("backup_bench: %u cores, load %s, data under %s (%s)\n", std::thread::hardware_concurrency(),
              loadavg().c_str(), config.base.c_str(), filesystem_of(config.base).c_str());
  if (!config.fill_only.empty()) {
    fill(config.fill_only, config.megabytes, config.rooms);
    std::printf("filled %s\n", config.fill_only.c_str());
    return 0;
  }
  TempDir dir(config.base, "switchboard-backup-bench");
  auto begin = SteadyClock::now();
  fill(dir.path() / "a", config.megabytes, config.rooms);
  const auto store_bytes = fs::file_size(dir.path() / "a" / "data.mdb");
  std::printf("store: %llu MB of 1000-byte bodies in %d rooms, data.mdb %.1f MB (filled in %.1f s)\n",
              static_cast<unsigned long long>(config.megabytes), config.rooms, store_bytes / 1e6, seconds_since(begin));

  std::vector<double> raw, raw_synced, backup, quiet_rate, busy_rate;  // MB/s, MB/s, MB/s, msg/s, msg/s
  std::uint64_t backup_bytes = 0, publish_errors = 0;
  for (int round = 0; round < config.rounds; ++round) {
    const fs::path r = dir.path() / ("round-" + std::to_string(round));
    const double copy_s = lmdb_compact_copy(dir.path() / "a", r / "raw");
    const double sync_s = fsync_file(r / "raw" / "data.mdb");
    const double raw_mb = fs::file_size(r / "raw" / "data.mdb") / 1e6;
    raw.push_back(raw_mb / copy_s);
    raw_synced.push_back(raw_mb / (copy_s + sync_s));
    fs::remove_all(r / "raw");

    auto nodes = start_in_process([&] { return loopback_topology(dir.path(), "sync", {"a"}); }, "backup-bench");
    const std::string endpoint = nodes.topology.nodes.at("a").client;
    sb::client::ClientOptions o;
    o.endpoint = endpoint;
    sb::client::Client admin(o);
    if (round == 0 && !admin.create_room("live", "bob")) throw std::runtime_error("create_room live");
    {
      Publisher publisher(config.publisher ? endpoint : std::string(), config.rate);
      while (config.publisher && publisher.acked.load() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // Publishers alone, then with a backup running; the same length of time.
      std::uint64_t from = publisher.acked.load();
      begin = SteadyClock::now();
      auto made = admin.backup(r / "backup");
      const double took = seconds_since(begin);
      if (!made) throw std::runtime_error("backup: " + made.error().message);
      busy_rate.push_back((publisher.acked.load() - from) / took);
      backup.push_back(*made / 1e6 / took);
      backup_bytes = *made;
      from = publisher.acked.load();
      begin = SteadyClock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(took));
      quiet_rate.push_back((publisher.acked.load() - from) / seconds_since(begin));
      publish_errors += publisher.errors.load();
    }
    fs::remove_all(r);
  }
  std::printf("\n| step | median of %d |\n|---|---|\n", config.rounds);
  std::printf("| LMDB's compacting copy (mdb_copy -c: mdb_env_copy2, MDB_CP_COMPACT), to a directory | %.0f MB/s |\n",
              median(raw));
  std::printf("| the same, then fsync of the copy (as a backup must be, before it is trusted) | %.0f MB/s |\n",
              median(raw_synced));
  std::printf("| switchboard backup: the node's copy, 1 MiB chunks over tcp to a client, written and fsynced | %.0f MB/s "
              "(%.2fx LMDB's copy, target >= 0.5x; %.2fx with its fsync) |\n",
              median(backup), median(backup) / median(raw), median(backup) / median(raw_synced));
  if (config.publisher)
    std::printf("| durable publishes (sync, pipelined, 1 client%s) while the backup runs | %.0f msg/s (%.2fx without a "
                "backup: %.0f msg/s, as long a run just after) |\n",
                config.rate ? (", paced to " + std::to_string(config.rate) + "/s").c_str() : "", median(busy_rate),
                median(busy_rate) / median(quiet_rate), median(quiet_rate));
  std::printf("\nlast backup: %.1f MB (the store compacted, with what the publisher added); rates per copy's own size;\n"
              "publish errors: %llu. The node runs in this process on loopback; the publisher publishes 100 bytes\n"
              "at a time into another room all through (up to 1000 in flight).\n",
              backup_bytes / 1e6, static_cast<unsigned long long>(publish_errors));
  return 0;
}
