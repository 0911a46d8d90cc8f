// A message's life (docs/PROTOCOL.md 4.7.2), measured on a node in this process: what an
// edit, a reaction, a reply in a thread and a delete cost beside a publish (one client pipelining, durability
// sync, as the publish throughput rows), and reading a room through whose messages are
// 10% edited and 10% reacted to beside a room of plain messages (what a page carries
// per message: the latest body, reaction counts, the reader's own).
//
//   build/bench/life_bench [--n N] [--history N] [--rounds N] [--dir DIR]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace fs = std::filesystem;
using namespace sb::bench;

struct Config {
  std::uint64_t n = 20'000;         ///< entries of each kind per write round
  std::uint64_t history = 200'000;  ///< messages in each room read through
  int rounds = 3;
  fs::path base = fs::temp_directory_path();
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

class LifeNode {
 public:
  LifeNode(const fs::path& data, sb::persistence::Durability durability) {
    sb::actors::NodeOptions options;
    options.name = "life";
    options.data_dir = data;
    options.client_endpoints = {"tcp://127.0.0.1:*"};
    options.pub_endpoints = {"tcp://127.0.0.1:*"};
    options.durability = durability;
    options.limits.edit_window_s = 0;  // the rounds edit old messages too
    auto node = sb::actors::Node::start(options);
    if (!node) throw std::runtime_error("Node::start: " + node.error().message);
    node_ = std::move(*node);
    for (const auto& e : node_->client_endpoints())
      if (e.rfind("tcp://", 0) == 0) endpoint_ = e;
  }
  sb::client::ClientOptions client(const std::string& as) const {
    sb::client::ClientOptions o;
    o.endpoint = endpoint_;
    o.max_in_flight = 1000;
    o.as = as;
    return o;
  }

 private:
  std::unique_ptr<sb::actors::Node> node_;
  std::string endpoint_;
};

/// `n` entries of `kind` (message: new ones; with a first target, each in the thread of
/// one of the messages from there on) pipelined by one client; entries a second.
double pipeline(sb::client::Client& c, const std::string& room, sb::EntryKind kind, std::uint64_t first_target,
                std::uint64_t n, const std::string& body) {
  std::uint64_t failed = 0;
  std::string error;
  const auto begin = SteadyClock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    sb::transport::Publish p{room, "ann", {}, kind == sb::EntryKind::message || kind == sb::EntryKind::edit ? body : ""};
    p.kind = kind;
    if (kind != sb::EntryKind::message) p.target = first_target + i;
    else if (first_target != 0) p.thread = first_target + i;
    if (kind == sb::EntryKind::react) p.key = "+1";
    c.publish_async(std::move(p), [&](const sb::Result<sb::transport::PublishOk>& r) {
      if (!r) {
        ++failed;
        error = r.error().message;
      }
    });
  }
  if (!c.wait_all(sb::client::Millis(600'000))) throw std::runtime_error("entries not answered in time");
  const double seconds = Seconds(SteadyClock::now() - begin).count();
  if (failed) throw std::runtime_error(std::to_string(failed) + " entries failed: " + error);
  return static_cast<double>(n) / seconds;
}

void write_path(const Config& config) {
  TempDir dir(config.base, "life-bench");
  LifeNode node(dir.path() / "data", sb::persistence::Durability::sync);
  sb::client::Client ann(node.client("ann"));
  // Publishes one per frame, as many frames in flight as entries get (they go one per frame).
  auto single_options = node.client("ann");
  single_options.max_batch = 1;
  single_options.publish_frames_in_flight = 1000;
  sb::client::Client single(single_options);
  const std::string body(100, 'x');
  std::vector<double> publish, one_per_frame, edit, react, reply, remove;
  for (int r = 0; r < config.rounds; ++r) {
    const std::string room = "w" + std::to_string(r);
    if (!ann.create_room(room, "ann")) throw std::runtime_error("create_room");
    one_per_frame.push_back(pipeline(single, room, sb::EntryKind::message, 0, config.n, body));
    publish.push_back(pipeline(ann, room, sb::EntryKind::message, 0, config.n, body));
    edit.push_back(pipeline(ann, room, sb::EntryKind::edit, 1, config.n, body));
    react.push_back(pipeline(ann, room, sb::EntryKind::react, 1, config.n, body));
    reply.push_back(pipeline(ann, room, sb::EntryKind::message, 1, config.n, body));
    remove.push_back(pipeline(ann, room, sb::EntryKind::remove, 1, config.n, body));
  }
  const double p = median(publish), single_p = median(one_per_frame);
  std::printf("write path: one client pipelining (1000 in flight), durability sync, 100 B bodies, %llu of each a "
              "round, median of %d rounds\n",
              static_cast<unsigned long long>(config.n), config.rounds);
  std::printf("  %-28s %10.0f /s\n", "publish (batch frames)", p);
  std::printf("  %-28s %10.0f /s   %.2fx batched\n", "publish (one per frame)", single_p, single_p / p);
  for (auto [name, v] : {std::pair{"edit (one per frame)", &edit}, std::pair{"react (one per frame)", &react},
                         std::pair{"thread reply (one per frame)", &reply}, std::pair{"delete (one per frame)", &remove}})
    std::printf("  %-28s %10.0f /s   %.2fx one per frame, %.2fx batched\n", name, median(*v), median(*v) / single_p,
                median(*v) / p);
}

void read_path(const Config& config) {
  TempDir dir(config.base, "life-bench");
  const auto data = dir.path() / "data";
  const std::uint64_t ts = 1'000'000;  // long ago: outside the retry window
  {
    auto store = open_for_fill(data);
    std::vector<sb::persistence::Record> batch{sb::persistence::CreateRoom{"plain", "ann", ts},
                                               sb::persistence::CreateRoom{"lived", "ann", ts},
                                               sb::persistence::AddMember{"lived", "bob", sb::Role::member}};
    const std::string body(100, 'x'), edited(100, 'y');
    auto flush = [&](bool last) {
      if (batch.size() < 10'000 && !last) return;
      if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
      batch.clear();
    };
    char id[24];
    for (std::uint64_t seq = 1; seq <= config.history; ++seq) {
      std::snprintf(id, sizeof id, "p%llu", static_cast<unsigned long long>(seq));
      batch.emplace_back(sb::persistence::StoredMessage{"plain", seq, "ann", ts, body, id});
      flush(false);
    }
    // The same messages; then every tenth edited and every tenth (others) reacted to.
    std::uint64_t seq = 0;
    for (std::uint64_t i = 1; i <= config.history; ++i) {
      std::snprintf(id, sizeof id, "l%llu", static_cast<unsigned long long>(i));
      batch.emplace_back(sb::persistence::StoredMessage{"lived", ++seq, "ann", ts, body, id});
      flush(false);
    }
    for (std::uint64_t target = 1; target <= config.history; ++target) {
      if (target % 10 != 1 && target % 10 != 6) continue;
      std::snprintf(id, sizeof id, "e%llu", static_cast<unsigned long long>(target));
      sb::persistence::StoredMessage e{"lived", ++seq, target % 10 == 1 ? "ann" : "bob", ts, target % 10 == 1 ? edited : "", id};
      e.entry.kind = target % 10 == 1 ? sb::EntryKind::edit : sb::EntryKind::react;
      e.entry.target = target;
      e.entry.key = "+1";
      batch.emplace_back(std::move(e));
      flush(false);
    }
    flush(true);
  }
  LifeNode node(data, sb::persistence::Durability::nosync);
  sb::client::Client bob(node.client("bob"));
  auto read_through = [&](const std::string& room, std::uint64_t& entries) {
    entries = 0;
    const auto begin = SteadyClock::now();
    auto read = bob.read_history(
        room, 0,
        [&](const sb::transport::HistoryPage& page) {
          entries += page.messages.size();
          return true;
        },
        1000);
    if (!read) throw std::runtime_error("read_history: " + read.error().message);
    return static_cast<double>(entries) / Seconds(SteadyClock::now() - begin).count();
  };
  std::vector<double> plain, lived;
  std::uint64_t plain_entries = 0, lived_entries = 0;
  for (int r = 0; r < config.rounds; ++r) {
    plain.push_back(read_through("plain", plain_entries));
    lived.push_back(read_through("lived", lived_entries));
  }
  const double p = median(plain), l = median(lived);
  std::printf("read path: a room read through in pages of 1000 (Client::read_history, as a member), median of %d\n",
              config.rounds);
  std::printf("  plain: %llu messages                          %10.0f entries/s\n",
              static_cast<unsigned long long>(plain_entries), p);
  std::printf("  10%% edited, 10%% reacted: %llu entries         %10.0f entries/s   %.2fx plain;"
              " messages/s %.0f (%.2fx)\n",
              static_cast<unsigned long long>(lived_entries), l, l / p,
              l * static_cast<double>(config.history) / static_cast<double>(lived_entries),
              l * static_cast<double>(config.history) / static_cast<double>(lived_entries) / p);
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--n") config.n = std::stoull(value);
    else if (flag == "--history") config.history = std::stoull(value);
    else if (flag == "--rounds") config.rounds = std::stoi(value);
    else if (flag == "--dir") config.base = value;
    else {
      std::fprintf(stderr, "usage: %s [--n N] [--history N] [--rounds N] [--dir DIR]\n", argv[0]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  std::printf("%s; %s; load %s\n", cpu_model().c_str(), filesystem_of(config.base).c_str(), loadavg().c_str());
  try {
    write_path(config);
    read_path(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "life_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
