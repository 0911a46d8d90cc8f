// switchboard_chaos: publishers and a subscriber work a real node while a driver kills
// it (kill -9) or freezes it (SIGSTOP, then SIGCONT) at random moments and restarts
// it; then a checker reads every room's whole history and the subscriber's log and
// verifies what Switchboard promises:
//   - every acknowledged message is stored, exactly once, under the seq it was acked
//     with, and every message a publisher sent was in the end acknowledged (publishers
//     retry with the same client message id until it is);
//   - each room's seqs are gapless from 1;
//   - nothing appears that no publisher sent;
//   - the subscriber's log of each room is the room's history, in order, once each
//     (the client repairs gaps from history).
// It prints its figures and exits 0 when every check holds, 1 otherwise.
// docs/RELIABILITY.md has the commands (ctest runs a short mode) and measured figures.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

struct Settings {
  int faults = 10;
  bool pause = false;  ///< SIGSTOP/SIGCONT instead of kill -9
  int rooms = 4;
  int publishers = 3;
  unsigned seed = 0;
  int min_gap_ms = 150, max_gap_ms = 600;  ///< time between faults
  int pause_ms = 1500;                      ///< how long a frozen node stays frozen
};

/// The node, restarted on the same endpoints and data after each kill.
class Target {
 public:
  explicit Target(const std::filesystem::path& data)
      : data_(data),
        listen_("tcp://127.0.0.1:" + std::to_string(testing::free_port())),
        extra_({"--publish", "tcp://127.0.0.1:" + std::to_string(testing::free_port()), "--bridge", "off",
                "--metrics", "off"}) {
    start();
  }
  void start() { node_ = std::make_unique<NodeProcess>(data_, extra_, std::chrono::seconds(60), listen_); }
  void kill_and_restart() {
    node_->kill_hard();
    start();
  }
  void freeze(std::chrono::milliseconds how_long) {
    ::kill(node_->pid(), SIGSTOP);
    std::this_thread::sleep_for(how_long);  // the freeze itself: what the node lives through
    ::kill(node_->pid(), SIGCONT);
  }
  client::ClientOptions options() const {
    client::ClientOptions o;
    o.endpoint = node_->client_endpoint();
    auto keys = client::load_local_keys(node_->keys_dir());  // kept in the data directory across restarts
    if (keys) o.curve = *keys;
    o.attempt_timeout = client::Millis(400);
    o.max_attempts = 3;
    return o;
  }
  int stop() { return node_->stop(); }

 private:
  std::filesystem::path data_;
  std::string listen_;
  std::vector<std::string> extra_;
  std::unique_ptr<NodeProcess> node_;
};

struct Acked {
  std::string room;
  std::uint64_t seq = 0;
};

struct Figures {
  std::atomic<std::uint64_t> sent{0}, failed_attempts{0}, duplicates{0};
};

std::string room_name(int i) { return "chaos-" + std::to_string(i); }

/// Publishes messages until `stop`, each retried with its client message id until it
/// is acknowledged. Records every ack.
void publisher(int id, const Settings& s, const client::ClientOptions& options, std::atomic<bool>& stop,
               std::mutex& mu, std::map<std::string, Acked>& acked, Figures& figures) {
  client::Client c(options);
  for (int n = 0; !stop; ++n) {
    const std::string cmid = "p" + std::to_string(id) + "-" + std::to_string(n);
    const std::string room = room_name((id + n) % s.rooms);
    figures.sent++;
    for (;;) {
      auto ack = c.publish(room, "pub" + std::to_string(id), "body of " + cmid, cmid);
      if (ack) {
        if (ack->duplicate) figures.duplicates++;
        std::lock_guard lock(mu);
        acked[cmid] = {room, ack->seq};
        break;
      }
      figures.failed_attempts++;  // timeout or unavailable while the node is down: the same cmid again
    }
  }
}

std::vector<transport::RoomMessage> whole_history(client::Client& c, const std::string& room, bool& ok) {
  std::vector<transport::RoomMessage> all;
  for (;;) {
    auto page = c.history(room, client::HistoryQuery{1000, std::nullopt, all.empty() ? 0 : all.back().seq});
    if (!page) {
      std::cerr << "chaos: history of " << room << ": " << page.error().message << "\n";
      ok = false;
      return all;
    }
    all.insert(all.end(), page->messages.begin(), page->messages.end());
    if (!page->more) return all;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"Switchboard's chaos harness: kill -9 (or SIGSTOP) a node under load, then check nothing is lost, "
               "duplicated or reordered."};
  app.add_option("--faults", s.faults, "Kills (or freezes) to inflict")->capture_default_str();
  app.add_flag("--pause", s.pause, "Freeze the node (SIGSTOP, then SIGCONT) instead of killing it");
  app.add_option("--rooms", s.rooms, "Rooms published to")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--publishers", s.publishers, "Publishing clients")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--seed", s.seed, "Random seed (0: from the clock)");
  app.add_option("--pause-ms", s.pause_ms, "How long a freeze lasts")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (s.seed == 0) s.seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  std::mt19937 random(s.seed);

  TempDir data;
  Target node(data.path());
  const auto started = Clock::now();
  {
    client::Client setup(node.options());
    for (int r = 0; r < s.rooms; ++r) {
      if (!setup.create_room(room_name(r), "pub0")) return 1;
      for (int p = 1; p < s.publishers; ++p)
        if (!setup.join(room_name(r), "pub" + std::to_string(p))) return 1;
    }
  }

  // The subscriber follows every room from seq 1, through every fault.
  std::atomic<bool> stop_publishing{false}, stop_reading{false};
  std::mutex seen_mu;  // `seen` is the subscriber thread's; main reads how far it got
  std::map<std::string, std::vector<transport::RoomMessage>> seen;
  std::uint64_t sub_errors = 0;
  client::ClientOptions sub_options = node.options();
  std::thread subscriber([&] {
    client::Client c(sub_options);
    for (int r = 0; r < s.rooms; ++r)
      while (!c.subscribe(room_name(r), 0)) ++sub_errors;
    while (!stop_reading) {
      auto m = c.next(client::Millis(200));
      if (!m) { ++sub_errors; continue; }  // a repair failed while the node was down: it is asked again
      if (!*m) continue;
      std::lock_guard lock(seen_mu);
      seen[(*m)->room].push_back(std::move(**m));
    }
  });

  std::mutex mu;
  std::map<std::string, Acked> acked;
  Figures figures;
  std::vector<std::thread> publishers;
  for (int p = 0; p < s.publishers; ++p)
    publishers.emplace_back(publisher, p, std::cref(s), node.options(), std::ref(stop_publishing), std::ref(mu),
                            std::ref(acked), std::ref(figures));

  std::uniform_int_distribution<int> gap(s.min_gap_ms, s.max_gap_ms);
  for (int f = 0; f < s.faults; ++f) {
    std::this_thread::sleep_for(std::chrono::milliseconds(gap(random)));  // a random moment: the chaos schedule
    if (s.pause) node.freeze(std::chrono::milliseconds(s.pause_ms));
    else node.kill_and_restart();
  }
  stop_publishing = true;
  for (auto& t : publishers) t.join();

  // Every publish was acked; the subscriber catches up to each room's last acked seq.
  std::map<std::string, std::uint64_t> last;
  for (const auto& [cmid, a] : acked) last[a.room] = std::max(last[a.room], a.seq);
  const auto catch_up = Clock::now() + std::chrono::seconds(60);
  auto caught_up = [&] {
    std::lock_guard lock(seen_mu);
    for (const auto& [room, seq] : last)
      if (seen[room].size() < seq) return false;
    return true;
  };
  while (!caught_up() && Clock::now() < catch_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop_reading = true;  // the subscriber thread owns `seen` until it has stopped
  subscriber.join();

  // The checks.
  bool ok = true;
  std::uint64_t lost = 0, stored_twice = 0, gaps = 0, unknown = 0, sub_mismatch = 0, stored_total = 0;
  client::Client checker(node.options());
  for (int r = 0; r < s.rooms; ++r) {
    const std::string room = room_name(r);
    auto history = whole_history(checker, room, ok);
    stored_total += history.size();
    std::map<std::string, std::uint64_t> at;  // cmid -> seq
    for (std::size_t i = 0; i < history.size(); ++i) {
      if (history[i].seq != i + 1) ++gaps;
      if (!at.emplace(history[i].client_msg_id, history[i].seq).second) ++stored_twice;
      auto a = acked.find(history[i].client_msg_id);
      if (a == acked.end() || a->second.room != room || history[i].body != "body of " + history[i].client_msg_id)
        ++unknown;
    }
    for (const auto& [cmid, a] : acked)
      if (a.room == room) {
        auto it = at.find(cmid);
        if (it == at.end() || it->second != a.seq) ++lost;
      }
    const auto& log = seen[room];
    if (log.size() != history.size()) ++sub_mismatch;
    for (std::size_t i = 0; i < std::min(log.size(), history.size()); ++i)
      if (log[i].seq != history[i].seq || log[i].client_msg_id != history[i].client_msg_id) {
        ++sub_mismatch;
        break;
      }
  }
  const bool all_acked = acked.size() == figures.sent.load();
  ok = ok && lost == 0 && stored_twice == 0 && gaps == 0 && unknown == 0 && sub_mismatch == 0 && all_acked;
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << "chaos: " << (s.pause ? "freezes " : "kills ") << s.faults << ", seed " << s.seed << ", rooms "
            << s.rooms << ", publishers " << s.publishers << ", " << seconds << " s\n"
            << "chaos: sent " << figures.sent << ", acked " << acked.size() << ", stored " << stored_total
            << ", failed attempts retried " << figures.failed_attempts << ", acked as duplicates "
            << figures.duplicates << ", subscriber repairs failed and retried " << sub_errors << "\n"
            << "chaos: lost " << lost << ", stored twice " << stored_twice << ", seq gaps " << gaps
            << ", never sent " << unknown << ", rooms where the subscriber's log differs " << sub_mismatch << "\n"
            << "chaos: " << (ok ? "PASS" : "FAIL") << std::endl;
  if (node.stop() != 0) {
    std::cout << "chaos: the node did not stop cleanly\n";
    ok = false;
  }
  return ok ? 0 : 1;
}
