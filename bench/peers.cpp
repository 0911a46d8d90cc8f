// The peers users would otherwise pick, started by the suite itself from Debian's
// packages: redis-server (Streams for history, PUBLISH for delivery) through hiredis,
// and nats-server with JetStream on file storage through the NATS C client. Each runs
// on a free loopback port with its data in a fresh temporary directory, and is stopped
// after the run. A peer that is not built in, not installed or does not start gets no
// figure and a reason, and the suite goes on.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if SWITCHBOARD_BENCH_REDIS
#include <hiredis/hiredis.h>
#endif
#if SWITCHBOARD_BENCH_NATS
#include <nats/nats.h>
#endif

#include "suite.hpp"

namespace switchboard::bench {
namespace {

/// `name` on PATH, or in the sbin directories Debian puts servers in (nats-server is in
/// /usr/sbin, which a user's PATH may lack). Empty if none.
std::string find_program(const std::string& name) {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/usr/local/sbin:/sbin";
  std::stringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    std::filesystem::path p = std::filesystem::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

/// The first line `program --version` prints.
std::string version_of(const std::string& program) {
  std::string line;
  if (FILE* p = ::popen((program + " --version 2>&1").c_str(), "r")) {
    char buf[256];
    if (std::fgets(buf, sizeof buf, p)) line = buf;
    ::pclose(p);
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

/// A server child process, its output in `log`; stopped (SIGTERM, then SIGKILL after
/// 10 s) with the object.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) : log_(log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a benchmark killed midway takes its server with it
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ <= 0 || exited()) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 1000 && !exited(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!exited()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool exited() {
    if (done_) return true;
    int status = 0;
    done_ = ::waitpid(pid_, &status, WNOHANG) == pid_;
    return done_;
  }
  /// The last lines of the server's output, for a reason it did not start.
  std::string log_tail() const {
    std::ifstream in(log_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::string tail;
    for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i)
      tail += (tail.empty() ? "" : " | ") + lines[i];
    return tail.empty() ? "(no output)" : tail;
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool done_ = false;
};

/// Tries `connect` every 20 ms until it succeeds, the server exits, or 10 s pass.
/// Returns an empty string on success, else why not.
template <class Connect>
std::string wait_until_up(ServerProcess& server, const std::string& what, Connect connect) {
  const auto give_up = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < give_up) {
    if (connect()) return {};
    if (server.exited()) return what + " exited at start: " + server.log_tail();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return what + " did not accept connections within 10 s: " + server.log_tail();
}

/// The start every peer run shares: its setting, and the path of its server program in
/// `program`, or why it cannot run (in `skipped`: its client library was not built in,
/// or its server is not installed).
PeerThroughput prepare_peer(PeerSetting setting, int connections, bool built, const char* library,
                            const std::string& library_version, const char* server, std::string& program) {
  PeerThroughput result;
  result.setting = std::move(setting);
  result.throughput.connections = connections;
  if (!built)
    result.skipped =
        std::string("not built: ") + library + " was missing at configure time (scripts/setup installs it)";
  else if (program = find_program(server); program.empty())
    result.skipped = std::string(server) + " is not installed (scripts/setup installs it)";
  else
    result.setting.versions = version_of(program) + "; client " + library + " " + library_version;
  return result;
}

std::string redis_client_version() {
#if SWITCHBOARD_BENCH_REDIS
  return std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) + "." + std::to_string(HIREDIS_PATCH);
#else
  return {};
#endif
}

std::string nats_client_version() {
#if SWITCHBOARD_BENCH_NATS
  return nats_GetVersion();
#else
  return {};
#endif
}

}  // namespace

// ---- Redis -------------------------------------------------------------------------------

PeerThroughput redis_throughput(const Config& config, Durability like, int connections, std::size_t bytes) {
  const bool always = like == Durability::sync;
  std::string program;
  PeerThroughput result = prepare_peer(
      {std::string("redis XADD+PUBLISH appendfsync ") + (always ? "always" : "everysec"),
       always ? "the AOF is written and fsynced before the replies go out: an acked message survives power loss"
              : "the AOF is written before the replies go out and fsynced once a second: an acked message "
                "survives a process crash; a power loss can lose the last ~1-2 s",
       {}},
      connections, SWITCHBOARD_BENCH_REDIS, "libhiredis-dev", redis_client_version(), "redis-server", program);
#if !SWITCHBOARD_BENCH_REDIS
  (void)config, (void)bytes;
  return result;
#else
  if (!result.skipped.empty()) return result;
  try {
    TempDir dir(config.data_base, "switchboard-bench-redis");
    const int port = free_port();
    ServerProcess server({program, "--port", std::to_string(port), "--bind", "127.0.0.1", "--dir", dir.path().string(),
                          "--appendonly", "yes", "--appendfsync", always ? "always" : "everysec", "--save", "",
                          "--daemonize", "no", "--protected-mode", "no", "--logfile", ""},
                         dir.path() / "redis.log");
    auto connect = [&]() -> redisContext* {
      redisContext* c = redisConnect("127.0.0.1", port);
      if (c && !c->err) {
        if (auto* r = static_cast<redisReply*>(redisCommand(c, "PING"))) {
          freeReplyObject(r);
          return c;
        }
      }
      if (c) redisFree(c);
      return nullptr;
    };
    if (auto why = wait_until_up(server, "redis-server",
                                 [&] {
                                   redisContext* c = connect();
                                   if (c) redisFree(c);
                                   return c != nullptr;
                                 });
        !why.empty()) {
      result.skipped = why;
      return result;
    }

    const std::string body(bytes, 'x');
    struct Conn {
      redisContext* c = nullptr;
      std::string key;
      std::uint64_t acked = 0, errors = 0;
      std::string error;
      ~Conn() {
        if (c) redisFree(c);
      }
    };
    std::vector<Conn> conns(static_cast<std::size_t>(connections));
    // One message = XADD (the room's history) then PUBLISH (delivery), pipelined without
    // MULTI: it is acked when its PUBLISH reply arrives, which Redis sends after the XADD's.
    auto append = [&](Conn& c) {
      redisAppendCommand(c.c, "XADD %s * body %b", c.key.c_str(), body.data(), body.size());
      redisAppendCommand(c.c, "PUBLISH %s %b", c.key.c_str(), body.data(), body.size());
    };
    auto take = [](Conn& c, redisReply* r, std::uint64_t& replies) {
      if (r->type == REDIS_REPLY_ERROR) ++c.errors, c.error = std::string(r->str, r->len);
      freeReplyObject(r);
      if (++replies % 2 == 0) ++c.acked;
    };
    result.throughput.seconds = run_threads(
        connections, config.throughput_run,
        [&](int i) {
          Conn& c = conns[static_cast<std::size_t>(i)];
          c.key = "room:bench-" + std::to_string(i);
          c.c = connect();
          if (!c.c) {
            c.error = "cannot connect";
            return;
          }
          std::uint64_t replies = 0;
          for (int k = 0; k < config.throughput_warmup; ++k) append(c);
          for (int k = 0; k < 2 * config.throughput_warmup; ++k) {
            void* r = nullptr;
            if (redisGetReply(c.c, &r) != REDIS_OK) {
              c.error = c.c->errstr;
              return;
            }
            take(c, static_cast<redisReply*>(r), replies);
          }
          c.acked = c.errors = 0;
        },
        [&](int i, SteadyClock::time_point deadline) {
          Conn& c = conns[static_cast<std::size_t>(i)];
          if (!c.c || !c.error.empty()) return;
          std::size_t in_flight = 0;  // messages, two replies each
          std::uint64_t replies = 0;
          for (;;) {
            const bool sending = SteadyClock::now() < deadline;
            if (!sending && in_flight == 0) break;
            while (sending && in_flight < config.window) append(c), ++in_flight;
            void* r = nullptr;
            if (redisGetReply(c.c, &r) != REDIS_OK) {  // writes what is buffered, then waits
              c.error = c.c->errstr;
              return;
            }
            std::uint64_t before = c.acked;
            take(c, static_cast<redisReply*>(r), replies);
            while (redisGetReplyFromReader(c.c, &r) == REDIS_OK && r) take(c, static_cast<redisReply*>(r), replies);
            in_flight -= c.acked - before;
          }
        });
    for (auto& c : conns) {
      result.throughput.acked += c.acked;
      result.throughput.errors += c.errors;
      if (!c.error.empty()) result.throughput.error = c.error;
    }
  } catch (const std::exception& e) {
    result.skipped = std::string("redis run failed: ") + e.what();
  }
  return result;
#endif
}

// ---- NATS JetStream ----------------------------------------------------------------------

#if SWITCHBOARD_BENCH_NATS
namespace {

struct NatsConn {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<std::uint64_t> acked{0}, errors{0};
  std::string subject, error;
  ~NatsConn() {
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }
};

void on_nats_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr*, void* closure) {
  auto* c = static_cast<NatsConn*>(closure);
  (pa ? c->acked : c->errors).fetch_add(1, std::memory_order_relaxed);
  natsMsg_Destroy(msg);
}

std::string nats_error(const char* what, natsStatus s) { return std::string(what) + ": " + natsStatus_GetText(s); }

}  // namespace
#endif

PeerThroughput nats_throughput(const Config& config, Durability like, int connections, std::size_t bytes) {
  const bool always = like == Durability::sync;
  std::string program;
  PeerThroughput result = prepare_peer(
      {std::string("nats JetStream file ") + (always ? "sync_interval always" : "(default sync)"),
       always ? "fsync on every write before the ack: an acked message survives power loss"
              : "acked once in the stream's file store, not fsynced first (the store is fsynced every 2 min): a "
                "power loss can lose acked messages",
       {}},
      connections, SWITCHBOARD_BENCH_NATS, "libnats-dev", nats_client_version(), "nats-server", program);
#if !SWITCHBOARD_BENCH_NATS
  (void)config, (void)bytes;
  return result;
#else
  if (!result.skipped.empty()) return result;
  try {
    TempDir dir(config.data_base, "switchboard-bench-nats");
    const int port = free_port();
    const auto conf = dir.path() / "nats.conf";
    {
      std::ofstream out(conf);
      out << "listen: 127.0.0.1:" << port << "\n"
          << "jetstream {\n  store_dir: \"" << (dir.path() / "js").string() << "\"\n"
          << (always ? "  sync_interval: always\n" : "") << "}\n";
    }
    ServerProcess server({program, "-c", conf.string()}, dir.path() / "nats.log");
    const std::string url = "nats://127.0.0.1:" + std::to_string(port);
    if (auto why = wait_until_up(server, "nats-server",
                                 [&] {
                                   natsConnection* nc = nullptr;
                                   if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) return false;
                                   natsConnection_Destroy(nc);
                                   return true;
                                 });
        !why.empty()) {
      if (always && why.find("unknown field \"sync_interval\"") != std::string::npos)
        why = version_of(program) + " has no fsync-per-ack setting: it refuses \"sync_interval: always\" (unknown " +
              "field; the option came with 2.10)";
      result.skipped = why;
      return result;
    }

    std::vector<std::unique_ptr<NatsConn> > conns;
    auto open = [&](NatsConn& c) -> std::string {
      if (natsStatus s = natsConnection_ConnectTo(&c.nc, url.c_str()); s != NATS_OK) return nats_error("connect", s);
      jsOptions o;
      jsOptions_Init(&o);
      o.PublishAsync.MaxPending = static_cast<int64_t>(config.window);  // the same window as a Client's
      o.PublishAsync.AckHandler = on_nats_ack;
      o.PublishAsync.AckHandlerClosure = &c;
      o.PublishAsync.StallWait = 10'000;
      if (natsStatus s = natsConnection_JetStream(&c.js, c.nc, &o); s != NATS_OK) return nats_error("JetStream", s);
      return {};
    };
    {  // one stream holds every room, as one store does for a node
      NatsConn admin;
      if (auto e = open(admin); !e.empty()) {
        result.skipped = e;
        return result;
      }
      jsStreamConfig sc;
      jsStreamConfig_Init(&sc);
      sc.Name = "ROOMS";
      const char* subjects[] = {"room.>"};
      sc.Subjects = subjects;
      sc.SubjectsLen = 1;
      sc.Storage = js_FileStorage;
      sc.Replicas = 1;
      jsStreamInfo* si = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      if (natsStatus s = js_AddStream(&si, admin.js, &sc, nullptr, &code); s != NATS_OK) {
        result.skipped = nats_error("add stream", s);
        return result;
      }
      jsStreamInfo_Destroy(si);
    }
    for (int i = 0; i < connections; ++i) conns.push_back(std::make_unique<NatsConn>());
    const std::string body(bytes, 'x');
    auto wait_acks = [](NatsConn& c) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = 60'000;
      if (natsStatus s = js_PublishAsyncComplete(c.js, &po); s != NATS_OK) c.error = nats_error("acks", s);
    };
    result.throughput.seconds = run_threads(
        connections, config.throughput_run,
        [&](int i) {
          NatsConn& c = *conns[static_cast<std::size_t>(i)];
          c.subject = "room.bench-" + std::to_string(i);
          if (c.error = open(c); !c.error.empty()) return;
          for (int k = 0; k < config.throughput_warmup; ++k)
            js_PublishAsync(c.js, c.subject.c_str(), body.data(), static_cast<int>(body.size()), nullptr);
          wait_acks(c);
          c.acked = 0;
          c.errors = 0;
        },
        [&](int i, SteadyClock::time_point deadline) {
          NatsConn& c = *conns[static_cast<std::size_t>(i)];
          if (!c.error.empty()) return;
          while (SteadyClock::now() < deadline) {
            // Blocks while `window` publishes await their acks.
            natsStatus s =
                js_PublishAsync(c.js, c.subject.c_str(), body.data(), static_cast<int>(body.size()), nullptr);
            if (s != NATS_OK && s != NATS_TIMEOUT) {
              c.error = nats_error("publish", s);
              break;
            }
          }
          wait_acks(c);
        });
    for (auto& c : conns) {
      result.throughput.acked += c->acked.load();
      result.throughput.errors += c->errors.load();
      if (!c->error.empty()) result.throughput.error = c->error;
    }
  } catch (const std::exception& e) {
    result.skipped = std::string("nats run failed: ") + e.what();
  }
  return result;
#endif
}

}  // namespace switchboard::bench
