// Catching up from a copy of the store (docs/REPLICATION.md), measured: making the copy
// (mdb_env_copy2, compacted) beside LMDB's plain copy, installing a shard from it beside
// raw LMDB puts of the same messages, and the whole catch-up of a new replica through two
// nodes in this process (copy, 256 KiB chunks over the node link, install), from the
// nodes' start until the replica reports the primary's log position.
//
//   build/bench/copy_bench [--messages N] [--rooms N] [--rounds N] [--dir DIR]
#include <lmdb.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace fs = std::filesystem;
using namespace sb::bench;

struct Config {
  std::uint64_t messages = 200000;
  std::uint64_t rooms = 100;
  std::size_t body_bytes = 200;
  int rounds = 3;
  fs::path base = fs::temp_directory_path();
};

double seconds_since(SteadyClock::time_point begin) { return Seconds(SteadyClock::now() - begin).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

sb::persistence::HistoryStore open_store(const fs::path& dir) {
  sb::persistence::StoreOptions o;
  o.dir = dir;
  o.durability = sb::persistence::Durability::nosync;
  auto store = sb::persistence::HistoryStore::open(o);
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

/// The rooms of shard s1 in a two-shard topology (s1, s2): `n` of them.
std::vector<std::string> rooms_of_s1(const std::vector<sb::router::ShardConfig>& shards, std::uint64_t n) {
  sb::router::RoomPlacement placement(shards);
  std::vector<std::string> out;
  for (int i = 0; out.size() < n; ++i)
    if (std::string room = "room-" + std::to_string(i); placement.owner_of(room).name == "s1") out.push_back(room);
  return out;
}

/// Fills `dir` with `rooms` and `config.messages` messages spread over them.
void fill(const fs::path& dir, const std::vector<std::string>& rooms, const Config& config) {
  auto store = open_store(dir);
  std::vector<sb::persistence::Record> batch;
  for (const auto& room : rooms) batch.push_back(sb::persistence::CreateRoom{room, "ann", 1});
  if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
  const std::string body(config.body_bytes, 'x');
  std::vector<std::uint64_t> seqs(rooms.size(), 0);
  batch.clear();
  for (std::uint64_t i = 0; i < config.messages; ++i) {
    const std::size_t r = i % rooms.size();
    batch.push_back(sb::persistence::StoredMessage{rooms[r], ++seqs[r], "user-" + std::to_string(i % 50), 1000 + i, body,
                                                   "c-" + std::to_string(i)});
    if (batch.size() == 5000 || i + 1 == config.messages) {
      if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
      batch.clear();
    }
  }
}

/// Raw LMDB: `n` puts of 12-byte keys and `value_bytes` values in one transaction, in key
/// order, into a fresh environment: the least an install of `n` messages writes.
double raw_puts(const fs::path& dir, std::uint64_t n, std::size_t value_bytes) {
  fs::create_directories(dir);
  MDB_env* env = nullptr;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, std::size_t{4} << 30);
  if (mdb_env_open(env, dir.c_str(), MDB_NOSYNC, 0644) != 0) throw std::runtime_error("mdb_env_open");
  const auto begin = SteadyClock::now();
  MDB_txn* txn = nullptr;
  MDB_dbi dbi = 0;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, nullptr, 0, &dbi);
  std::string value(value_bytes, 'x');
  char key[12] = {};
  for (std::uint64_t i = 0; i < n; ++i) {
    for (int b = 0; b < 8; ++b) key[4 + b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
    MDB_val k{sizeof key, key}, v{value.size(), value.data()};
    if (mdb_put(txn, dbi, &k, &v, 0) != 0) throw std::runtime_error("mdb_put");
  }
  mdb_txn_commit(txn);
  const double took = seconds_since(begin);
  mdb_env_close(env);
  return took;
}

/// From both nodes' start until a reports b has s1's log; seconds.
double catch_up(const fs::path& filled, const fs::path& dir) {
  fs::create_directories(dir / "a");
  fs::copy_file(filled / "data.mdb", dir / "a" / "data.mdb");
  // s1 (owner a) with b as a replica; a's store is the filled one.
  auto parsed = sb::router::parse_topology(two_node_topology(dir, "nosync", "replicas = [\"b\"]\nack = \"replicated\"\n"),
                                           "copy-bench");
  if (!parsed.ok()) throw std::runtime_error(parsed.errors.front().to_string());
  const auto begin = SteadyClock::now();
  std::vector<std::unique_ptr<sb::actors::Node>> nodes;
  for (const char* name : {"a", "b"}) {
    auto node = sb::actors::Node::start(sb::actors::node_options(parsed.topology, name));
    if (!node) throw std::runtime_error(node.error().message);
    nodes.push_back(std::move(*node));
  }
  sb::client::ClientOptions o;
  o.endpoint = parsed.topology.nodes.at("a").client;
  sb::client::Client client(o);
  for (;;) {
    if (seconds_since(begin) > 600) throw std::runtime_error("b did not catch up within 600 s");
    auto list = client.shards();
    if (list)
      for (const auto& s : list->shards)
        if (s.name == "s1" && s.lsn > 0 && s.replicas.size() == 1 && s.replicas[0].lsn == s.lsn)
          return seconds_since(begin);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--messages") config.messages = std::stoull(v);
    else if (a == "--rooms") config.rooms = std::max<std::uint64_t>(1, std::stoull(v));
    else if (a == "--rounds") config.rounds = std::max(1, std::stoi(v));
    else if (a == "--dir") config.base = v;
    else {
      std::fprintf(stderr, "usage: %s [--messages N] [--rooms N] [--rounds N] [--dir DIR]\n", argv[0]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  std::printf("copy_bench: %u cores, load %s, data under %s (%s)\n", std::thread::hardware_concurrency(),
              loadavg().c_str(), config.base.c_str(), filesystem_of(config.base).c_str());
  TempDir dir(config.base, "switchboard-copy-bench");
  const std::vector<sb::router::ShardConfig> shards{{"s1", "a", {"b"}}, {"s2", "b", {}}};
  const auto rooms = rooms_of_s1(shards, config.rooms);
  const fs::path filled = dir.path() / "filled";
  auto begin = SteadyClock::now();
  fill(filled, rooms, config);
  const double fill_s = seconds_since(begin);
  const auto store_bytes = fs::file_size(filled / "data.mdb");
  std::printf("store: %llu messages of %zu bytes in %llu rooms of shard s1, data.mdb %.1f MB (filled in %.1f s)\n",
              static_cast<unsigned long long>(config.messages), config.body_bytes,
              static_cast<unsigned long long>(config.rooms), store_bytes / 1e6, fill_s);

  std::vector<double> compact, plain, install, raw, whole;
  std::uint64_t copy_bytes = 0;
  sb::router::RoomPlacement placement(shards);
  for (int round = 0; round < config.rounds; ++round) {
    const fs::path r = dir.path() / ("round-" + std::to_string(round));
    fs::create_directories(r / "compact");
    fs::create_directories(r / "plain");
    {
      auto store = open_store(filled);
      begin = SteadyClock::now();
      auto made = store.copy_to(r / "compact");
      if (!made) throw std::runtime_error(made.error().message);
      compact.push_back(seconds_since(begin));
      copy_bytes = *made;
    }
    {
      MDB_env* env = nullptr;
      mdb_env_create(&env);
      mdb_env_set_maxdbs(env, 8);
      mdb_env_set_mapsize(env, std::size_t{4} << 30);
      if (mdb_env_open(env, filled.c_str(), 0, 0644) != 0) throw std::runtime_error("mdb_env_open");
      begin = SteadyClock::now();
      if (mdb_env_copy2(env, (r / "plain").c_str(), 0) != 0) throw std::runtime_error("mdb_env_copy2");
      plain.push_back(seconds_since(begin));
      mdb_env_close(env);
    }
    {
      auto replica = open_store(r / "replica");
      begin = SteadyClock::now();
      auto installed = replica.install_shard(
          r / "compact", "s1", [&](std::string_view room) { return placement.owner_of(room).name == "s1"; }, 0);
      if (!installed) throw std::runtime_error(installed.error().message);
      install.push_back(seconds_since(begin));
      if (installed->messages != config.messages) throw std::runtime_error("install: messages missing");
    }
    raw.push_back(raw_puts(r / "raw", config.messages, config.body_bytes + 40));
    whole.push_back(catch_up(filled, r / "nodes"));
    fs::remove_all(r);
  }
  const double m = static_cast<double>(config.messages);
  std::printf("\n| step | median of %d | rate | against |\n|---|---|---|---|\n", config.rounds);
  std::printf("| copy, compacted (mdb_env_copy2 MDB_CP_COMPACT) | %.3f s | %.0f MB/s | LMDB's plain copy: %.3f s (%.2fx) |\n",
              median(compact), store_bytes / 1e6 / median(compact), median(plain), median(compact) / median(plain));
  std::printf("| install one shard (rooms, members, messages, log position: one transaction) | %.3f s | %.0f msg/s | "
              "raw LMDB puts of as many values: %.3f s (%.2fx) |\n",
              median(install), m / median(install), median(raw), median(install) / median(raw));
  std::printf("| a new replica catches up: both nodes start, copy, %llu KiB chunks over tcp, install | %.3f s | %.1f MB/s "
              "of copy | copy + install alone: %.3f s (%.2fx) |\n",
              256ull, median(whole), copy_bytes / 1e6 / median(whole), median(compact) + median(install),
              median(whole) / (median(compact) + median(install)));
  std::printf("\ncopy: %.1f MB (the store compacted); nosync stores; rates are per the step's median.\n"
              "install: opens each message with the copy's key and seals it with the replica's (both in clear here),\n"
              "  under new room ids; the raw baseline writes the same count of 12-byte keys and %zu-byte values.\n"
              "catch-up: includes both nodes' start and the first heartbeats (the replica reports where it is,\n"
              "  the primary reads its log and finds it trimmed); polled every 20 ms through `shards`.\n",
              copy_bytes / 1e6, config.body_bytes + 40);
  return 0;
}
