// A deterministic simulation of one replicated shard (docs/RELIABILITY.md, "Simulated
// failures").
//
// The members of the shard are the real actors a node runs (chat and persistence, each
// member with its own LMDB directory), in one process and one thread, under a
// simulated clock and a simulated network: nothing here stands in for replication,
// elections or the store. What is simulated is what lies between them: the links
// between members (latency, frames dropped, delayed, reordered and duplicated,
// partitions both ways and one way), the processes (crashed and restarted with what
// their store committed, paused as by SIGSTOP, a data directory lost) and the clients
// (publishing with retries, moving to another node, reading history).
//
// Every run is a function of its seed: the same seed gives the same schedule, the same
// frames in the same order, the same result. Invariants are checked as it goes (one
// primary per term; committed entries never change and are in every later primary's
// log; members' logs match where their terms do; an acknowledged publish keeps its seq;
// what a read showed is never taken back) and at the end, after every fault is healed
// (the members converge: the same log and history; every publish acknowledged, stored
// once, at its seq; seqs gapless).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace switchboard::sim {

struct SimOptions {
  std::uint64_t seed = 1;
  int members = 3;     ///< members of the shard: one owner and members - 1 replicas
  int clients = 3;     ///< each publishes and reads
  int publishes = 30;  ///< per client
  int rooms = 2;
  /// After each publish, the chance a client also reacts to a message (or takes a
  /// reaction back), or deletes one of its own: lifecycle entries (docs/PROTOCOL.md 4.7.2).
  double changes = 0.2;
  /// Simulated time with faults coming; after it every fault is healed and the members
  /// have `heal_for` to converge and answer every publish.
  std::chrono::milliseconds faulty_for{40'000}, heal_for{60'000};
  /// Faults drawn from: crash (kill -9 and a restart), pause (SIGSTOP, SIGCONT), partition
  /// (both ways), oneway (one way), lossy (links lose frames), disk (a crash that loses
  /// the member's data directory; one member's at most in a run).
  std::set<std::string> kinds = {"crash", "pause", "partition", "oneway", "lossy", "disk"};
  int min_faults = 2, max_faults = 6;
  /// [cluster] misses: heartbeats (1000 ms) without an answer before a member is down.
  unsigned misses = 3;
  /// Links reorder and duplicate frames too (ZeroMQ over TCP does neither: off by default).
  bool adversarial = false;
  /// Where the members' data directories go (each run makes and removes its own).
  std::filesystem::path dir;
  bool verbose = false;  ///< the schedule and the members' logs as it goes
};

struct SimResult {
  bool ok = true;
  std::string violation;              ///< the first invariant broken
  std::vector<std::string> schedule;  ///< every fault and heal, with its time
  std::uint64_t acknowledged = 0, reads = 0, elections = 0, frames = 0, steps = 0;
  /// Lifecycle entries acknowledged (among `acknowledged`), and refused by the rules.
  std::uint64_t changes = 0, changes_refused = 0;
  std::uint64_t last_term = 0;  ///< the shard's term at the end (1: no election won)
  std::uint64_t converged_ms = 0;  ///< simulated time from healing to converged
  /// Each time the primary was lost (crash, pause, partition) with no other fault on:
  /// from the fault to the moment a primary of a later term could acknowledge writes
  /// (its term's first entry committed), in ms. A loss the primary rode out (back before
  /// anyone was elected), or during which another fault came, is not counted.
  std::vector<std::pair<std::string, double>> failovers;
};

SimResult simulate(const SimOptions& options);

}  // namespace switchboard::sim
