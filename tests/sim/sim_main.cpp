// switchboard_sim: runs the deterministic simulation of a replicated shard
// (cluster_sim.hpp) for a range of seeds, and prints each failing seed's schedule and
// the command that replays it exactly.
//
//   switchboard_sim --seeds 1-300 --members 3
//   switchboard_sim --seed 4711 --members 5 --verbose
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <algorithm>
#include <sstream>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "cluster_sim.hpp"

int main(int argc, char** argv) {
  using namespace switchboard::sim;
  CLI::App app{"Switchboard's deterministic simulation of a replicated shard"};
  std::uint64_t seed = 0;
  std::string seeds;
  SimOptions options;
  std::vector<std::string> kinds;
  std::int64_t faulty_ms = options.faulty_for.count(), heal_ms = options.heal_for.count();
  std::string dir;
  app.add_option("--seed", seed, "run this seed only");
  app.add_option("--seeds", seeds, "a range of seeds, FIRST-LAST (default 1-100)");
  app.add_option("--members", options.members, "members of the shard")->check(CLI::Range(3, 7));
  app.add_option("--clients", options.clients, "clients publishing and reading")->check(CLI::Range(1, 50));
  app.add_option("--publishes", options.publishes, "publishes per client")->check(CLI::Range(1, 100000));
  app.add_option("--rooms", options.rooms, "rooms of the shard")->check(CLI::Range(1, 100));
  app.add_option("--changes", options.changes,
                 "after each publish, the chance of a reaction, a reaction taken back, a delete or a reply in a thread (0 to 1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--kinds", kinds, "faults: crash, pause, partition, oneway, lossy, disk")
      ->delimiter(',')
      ->check(CLI::IsMember({"crash", "pause", "partition", "oneway", "lossy", "disk"}));
  app.add_option("--faults", options.max_faults, "at most this many faults a run")->check(CLI::Range(0, 1000));
  app.add_option("--faulty-ms", faulty_ms, "simulated time with faults")->check(CLI::Range(1000, 3'600'000));
  app.add_option("--heal-ms", heal_ms, "simulated time to converge after healing")->check(CLI::Range(1000, 3'600'000));
  app.add_flag("--adversarial", options.adversarial, "links reorder and duplicate frames too");
  app.add_option("--misses", options.misses, "[cluster] misses: heartbeats without an answer before a member is down")
      ->check(CLI::Range(1, 100));
  app.add_option("--dir", dir, "where the members' data directories go (default: the system's temp directory)");
  app.add_flag("--verbose", options.verbose, "print the schedule and elections as they happen");
  CLI11_PARSE(app, argc, argv);

  std::uint64_t first = 1, last = 100;
  if (app.count("--seed")) {
    first = last = seed;
  } else if (!seeds.empty()) {
    char dash = 0;
    std::istringstream in(seeds);
    if (!(in >> first >> dash >> last) || dash != '-' || first > last) {
      std::cerr << "--seeds: expected FIRST-LAST, got '" << seeds << "'\n";
      return 2;
    }
  }
  if (!kinds.empty()) options.kinds = {kinds.begin(), kinds.end()};
  options.min_faults = std::min(options.min_faults, options.max_faults);
  options.faulty_for = std::chrono::milliseconds(faulty_ms);
  options.heal_for = std::chrono::milliseconds(heal_ms);
  const std::filesystem::path base =
      dir.empty() ? std::filesystem::temp_directory_path() / ("switchboard-sim-" + std::to_string(::getpid()))
                  : std::filesystem::path(dir);
  spdlog::set_level(options.verbose ? spdlog::level::warn : spdlog::level::off);
  if (const char* level = std::getenv("SWITCHBOARD_SIM_LOG")) spdlog::set_level(spdlog::level::from_str(level));

  const auto started = std::chrono::steady_clock::now();
  std::uint64_t passed = 0, failed = 0, acknowledged = 0, elections = 0, reads = 0, frames = 0, steps = 0;
  std::uint64_t changes = 0, refused = 0;
  std::map<std::string, std::vector<double>> failovers;  // by the kind of loss, in ms
  for (std::uint64_t s = first; s <= last; ++s) {
    options.seed = s;
    options.dir = base / std::to_string(s);
    const SimResult r = simulate(options);
    acknowledged += r.acknowledged;
    changes += r.changes;
    refused += r.changes_refused;
    elections += r.elections;
    reads += r.reads;
    frames += r.frames;
    steps += r.steps;
    for (const auto& [kind, ms] : r.failovers) failovers[kind].push_back(ms);
    if (r.ok) {
      ++passed;
      if (options.verbose)
        std::cout << "seed " << s << ": ok, " << r.acknowledged << " acknowledged, " << r.elections
                  << " elections, term " << r.last_term << ", converged " << r.converged_ms << " ms after healing\n";
      continue;
    }
    ++failed;
    std::cout << "seed " << s << " FAILED: " << r.violation << "\n  schedule:\n";
    for (const auto& line : r.schedule) std::cout << "    " << line << "\n";
    std::cout << "  replay: " << argv[0] << " --seed " << s << " --members " << options.members << " --clients "
              << options.clients << " --publishes " << options.publishes << " --rooms " << options.rooms << " --changes " << options.changes
              << " --faults " << options.max_faults << " --misses " << options.misses << " --faulty-ms " << faulty_ms << " --heal-ms " << heal_ms;
    std::string list;
    for (const auto& k : options.kinds) list += (list.empty() ? "" : ",") + k;
    std::cout << " --kinds " << list << (options.adversarial ? " --adversarial" : "") << " --verbose\n";
  }
  std::error_code ignored;
  if (dir.empty()) std::filesystem::remove_all(base, ignored);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%llu seeds (%llu-%llu), %d members: %llu passed, %llu failed; %llu publishes acknowledged (%llu of "
              "them reactions, deletes and thread replies; %llu more refused by the rules), %llu reads, %llu elections, %llu frames, "
              "%llu steps; %.1f s\n",
              static_cast<unsigned long long>(last - first + 1), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(last), options.members, static_cast<unsigned long long>(passed),
              static_cast<unsigned long long>(failed), static_cast<unsigned long long>(acknowledged),
              static_cast<unsigned long long>(changes), static_cast<unsigned long long>(refused),
              static_cast<unsigned long long>(reads), static_cast<unsigned long long>(elections),
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(steps), seconds);
  // Failover time in heartbeats (1000 ms here): from losing the primary to a new
  // primary able to acknowledge writes.
  for (auto& [kind, times] : failovers) {
    std::sort(times.begin(), times.end());
    auto at = [&](double q) { return times[std::min(times.size() - 1, static_cast<std::size_t>(q * static_cast<double>(times.size())))] / 1000.0; };
    std::printf("failover after a %s of the primary: %zu times, median %.2f heartbeats, p90 %.2f, p99 %.2f, worst %.2f\n",
                kind.c_str(), times.size(), at(0.5), at(0.9), at(0.99), times.back() / 1000.0);
  }
  return failed == 0 ? 0 : 1;
}
