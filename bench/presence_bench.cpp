// Presence benchmark (issue 4): heartbeats per second, `who` latency with 100 000
// online sessions across 1 000 rooms, and memory per online session. One run, one
// table; the raw ZeroMQ round trip is measured beside the wire figures.
//
//   presence_bench [--quick] [--json PATH]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchboard/actors/node.hpp"
#include "switchboard/actors/presence.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/socket.hpp"

namespace sb = switchboard;
using namespace std::chrono;
using SteadyClock = steady_clock;

namespace {

struct Sizes {
  int rooms = 1000;
  int members_per_room = 100;  // 100 000 users, one session each
  int heartbeats = 2'000'000;
  int wire_seconds = 3;
  int who_samples = 2000;
};

std::string user_name(int i) { return "user-" + std::to_string(i); }
std::string session_name(int i) { return "session-" + std::to_string(i); }

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

sb::persistence::Snapshot membership(const Sizes& s) {
  sb::persistence::Snapshot snap;
  for (int r = 0; r < s.rooms; ++r) {
    auto& room = snap.rooms["room-" + std::to_string(r)];
    for (int m = 0; m < s.members_per_room; ++m) room.members.emplace(user_name(r * s.members_per_room + m), sb::Role::member);
  }
  return snap;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(std::ceil(p / 100.0 * v.size())) - 1];
}

/// The figures of a run: printed as they come, and written as JSON at the end (--json),
/// where switchboard_bench reads them into its table.
struct Report {
  struct Row {
    std::string workload, unit;
    double value = 0;
    std::string note;
    double raw = std::nan("");  // the raw ZeroMQ round trip beside a latency, if measured
  };
  std::vector<Row> rows;

  void row(const char* workload, const char* unit, double value, const char* note = "", double raw = std::nan("")) {
    std::printf("%-52s %-8s %14.1f  %s\n", workload, unit, value, note);
    rows.push_back({workload, unit, value, note, raw});
  }
  bool write(const std::string& path) const {
    nlohmann::json out;
    out["results"] = nlohmann::json::array();
    for (const auto& r : rows)
      out["results"].push_back({{"workload", r.workload},
                                {"unit", r.unit},
                                {"figure", r.value},
                                {"note", r.note},
                                {"raw_round_trip", std::isnan(r.raw) ? nlohmann::json(nullptr) : nlohmann::json(r.raw)}});
    std::ofstream file(path);
    file << out.dump(2) << "\n";
    return static_cast<bool>(file);
  }
};

/// The handler alone: every heartbeat decoded and handled as the runtime would, no socket.
void handler_figures(const Sizes& s, Report& report) {
  const long before = rss_kib();
  auto snapshot = membership(s);
  sb::actors::Presence presence({}, snapshot);
  sb::actors::Effects fx;
  sb::actors::Now now = sb::actors::Now::real();
  const int sessions = s.rooms * s.members_per_room;
  auto deliver = [&](const std::string& frame) {
    sb::actors::Inbound in{sb::actors::Inbound::Via::mailbox, "bench", {frame}};
    presence.on_message(in, now, fx);
    fx.clear();
  };
  const long with_members = rss_kib();
  for (int i = 0; i < sessions; ++i)
    deliver(sb::transport::encode_presence_request({1, sb::transport::SessionOpen{session_name(i), user_name(i)}}));
  const long with_sessions = rss_kib();

  std::vector<std::string> beats;
  for (int i = 0; i < sessions; ++i)
    beats.push_back(sb::transport::encode_presence_request({2, sb::transport::Heartbeat{session_name(i)}}));
  auto start = SteadyClock::now();
  for (int i = 0; i < s.heartbeats; ++i) {
    if (i % sessions == 0) now.steady += milliseconds(1000);  // stay within the heartbeat rate limit
    deliver(beats[static_cast<std::size_t>(i % sessions)]);
  }
  double secs = duration<double>(SteadyClock::now() - start).count();
  report.row("heartbeats/s, presence handler, 100k sessions", "msg/s", s.heartbeats / secs,
             "(decode + handle + reply encode)");
  report.row("memory per online session (handler, RSS delta)", "bytes",
      (with_sessions - with_members) * 1024.0 / sessions, "");
  report.row("memory for 1k rooms x 100 members (RSS delta)", "MiB", (with_members - before) / 1024.0, "");
}

/// Over the wire: an in-process node, tcp loopback, pipelined heartbeats and who.
void wire_figures(const Sizes& s, Report& report) {
  char dir_template[] = "/tmp/presence-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  sb::actors::NodeOptions options;
  options.data_dir = dir;
  options.durability = sb::persistence::Durability::nosync;
  options.client_endpoints = {"tcp://127.0.0.1:*"};
  options.pub_endpoints = {"tcp://127.0.0.1:*"};
  options.presence_endpoints = {"tcp://127.0.0.1:*"};
  options.presence_pub_endpoints = {"tcp://127.0.0.1:*"};
  {
    // Rooms and members go into the store first; presence learns them from the
    // snapshot at startup, as it does on any restart.
    sb::persistence::StoreOptions store_options;
    store_options.dir = dir;
    store_options.durability = sb::persistence::Durability::nosync;
    auto store = sb::persistence::HistoryStore::open(store_options);
    std::vector<sb::persistence::Record> records;
    for (const auto& [room, state] : membership(s).rooms) {
      records.emplace_back(sb::persistence::CreateRoom{room, state.members.begin()->first, 1});
      for (const auto& [m, role] : state.members) records.emplace_back(sb::persistence::AddMember{room, m, role});
    }
    if (!store || !store->append_batch(records)) {
      std::fprintf(stderr, "cannot seed the store\n");
      std::exit(1);
    }
  }
  auto node = sb::actors::Node::start(options);
  if (!node) {
    std::fprintf(stderr, "cannot start node: %s\n", node.error().message.c_str());
    std::exit(1);
  }
  const std::string endpoint = (*node)->presence_endpoints().front();
  const int sessions = s.rooms * s.members_per_room;
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::sndhwm, 0);
  dealer.connect(endpoint);
  auto pipeline = [&](auto make_frame, int count, int window) {
    int sent = 0, received = 0;
    zmq::message_t reply;
    while (received < count) {
      while (sent < count && sent - received < window) {
        std::string f = make_frame(sent);
        dealer.send(zmq::buffer(f), zmq::send_flags::none);
        ++sent;
      }
      (void)dealer.recv(reply);
      ++received;
    }
  };
  pipeline([&](int i) { return sb::transport::encode_presence_request({1, sb::transport::SessionOpen{session_name(i), user_name(i)}}); },
           sessions, 1000);

  // Heartbeats: pipelined for a fixed time, cycling over the sessions.
  std::vector<std::string> beats;
  for (int i = 0; i < sessions; ++i)
    beats.push_back(sb::transport::encode_presence_request({2, sb::transport::Heartbeat{session_name(i)}}));
  int done = 0;
  auto start = SteadyClock::now();
  while (SteadyClock::now() - start < seconds(s.wire_seconds)) {
    pipeline([&](int i) { return beats[static_cast<std::size_t>((done + i) % sessions)]; }, 10'000, 1000);
    done += 10'000;
  }
  double secs = duration<double>(SteadyClock::now() - start).count();
  report.row("heartbeats/s over tcp, 1 pipelined connection", "msg/s", done / secs, "(window 1000)");

  // who latency, one request at a time, random rooms.
  std::vector<double> who_us;
  for (int i = 0; i < s.who_samples; ++i) {
    std::string f = sb::transport::encode_presence_request(
        {3, sb::transport::Who{"room-" + std::to_string((i * 7919) % s.rooms)}});
    auto t0 = SteadyClock::now();
    dealer.send(zmq::buffer(f), zmq::send_flags::none);
    zmq::message_t reply;
    (void)dealer.recv(reply);
    who_us.push_back(duration<double, std::micro>(SteadyClock::now() - t0).count());
  }
  // Raw baseline: the same round trip against a plain ROUTER echo.
  zmq::socket_t router(context, zmq::socket_type::router);
  std::string raw_endpoint = sb::transport::bind_resolved(router, "tcp://127.0.0.1:*");
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop) {
      if (zmq::poll(&item, 1, milliseconds(50)) == 0) continue;
      zmq::message_t id, body;
      (void)router.recv(id);
      (void)router.recv(body);
      router.send(id, zmq::send_flags::sndmore);
      router.send(body, zmq::send_flags::none);
    }
  });
  zmq::socket_t raw(context, zmq::socket_type::dealer);
  raw.connect(raw_endpoint);
  std::vector<double> raw_us;
  for (int i = 0; i < s.who_samples; ++i) {
    auto t0 = SteadyClock::now();
    raw.send(zmq::str_buffer("ping"), zmq::send_flags::none);
    zmq::message_t reply;
    (void)raw.recv(reply);
    raw_us.push_back(duration<double, std::micro>(SteadyClock::now() - t0).count());
  }
  stop = true;
  echo.join();
  char note[128];
  std::snprintf(note, sizeof note, "(raw round trip p50 %.1f us: %.2fx)", percentile(raw_us, 50),
                percentile(who_us, 50) / percentile(raw_us, 50));
  report.row("who latency p50, 100k online / 1k rooms (100 each)", "us", percentile(who_us, 50), note,
             percentile(raw_us, 50));
  std::snprintf(note, sizeof note, "(raw round trip p99 %.1f us)", percentile(raw_us, 99));
  report.row("who latency p99", "us", percentile(who_us, 99), note, percentile(raw_us, 99));
  (*node)->stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace

int main(int argc, char** argv) {
  Sizes sizes;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      sizes.heartbeats = 400'000;
      sizes.wire_seconds = 1;
      sizes.who_samples = 500;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::printf("usage: %s [--quick] [--json PATH]\n", argv[0]);
      return 2;
    }
  }
  Report report;
  std::printf("%-52s %-8s %14s\n", "workload", "unit", "figure");
  handler_figures(sizes, report);
  wire_figures(sizes, report);
  std::printf("\ntarget (issue 4): >= 500k heartbeats/s on one node.\n"
              "percentiles: nearest rank on the sorted samples.\n");
  if (!json_path.empty() && !report.write(json_path)) {
    std::printf("cannot write %s\n", json_path.c_str());
    return 1;
  }
  return 0;
}
