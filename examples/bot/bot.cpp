// A Switchboard service in its own process: a moderation hook and an echo bot.
//
//   bot --config topo.toml --service bot --node a --words words.txt --echo echo-room
//
// With `hook = "publish"` in the service's table, the node that owns a room asks this
// bot about every publish before storing it; a message holding a word of the list
// (case-insensitive) is refused, and its sender gets `refused` with the reason. The
// bot also follows the --echo rooms (through node --node) and answers every message
// there with "echo: " and the text, as user --user. Clients may call it by name
// through any node (Client::call_service): "check TEXT" answers "ok" or why TEXT would
// be refused, "stats" how many publishes it checked and refused.
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "switchboard/actors/service.hpp"
#include "switchboard/router/topology.hpp"

namespace sb = switchboard;
using sb::actors::Effects;
using sb::actors::Now;

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

class Bot final : public sb::actors::Service {
 public:
  Bot(std::vector<std::string> words, std::vector<std::string> echo_rooms, std::string user)
      : words_(std::move(words)), echo_rooms_(echo_rooms.begin(), echo_rooms.end()), user_(std::move(user)) {}

  void on_start(const std::vector<std::string>&, const std::vector<std::string>&, const Now&, Effects& out) override {
    for (const auto& room : echo_rooms_) {
      setup(out, sb::transport::CreateRoom{room, user_});
      setup(out, sb::transport::Join{room, user_});
      follow(out, room);
    }
  }

  void on_timer(std::uint64_t, const Now&, Effects& out) override {
    auto again = std::move(retry_);
    retry_.clear();
    for (auto& body : again) setup(out, std::move(body));
  }

  Verdict check_publish(const sb::transport::Publish& publish, const Now&) override {
    ++checked_;
    Verdict verdict = judge(publish.body);
    if (!verdict.accept) ++refused_;
    return verdict;
  }

  void on_call(const sb::transport::Call& call, const Caller& caller, const Now&, Effects& out) override {
    if (call.body == "stats")
      return answer(out, caller, "{\"checked\":" + std::to_string(checked_) + ",\"refused\":" + std::to_string(refused_) + "}");
    if (call.body.starts_with("check ")) {
      Verdict verdict = judge(call.body.substr(6));
      return answer(out, caller, verdict.accept ? std::string("ok") : verdict.reason);
    }
    answer(out, caller, sb::make_error(sb::errc::bad_field, "unknown command; the bot answers 'stats' and 'check TEXT'"));
  }

  void on_room_message(const sb::transport::RoomMessage& m, const Now&, Effects& out) override {
    if (m.user == user_ || !echo_rooms_.count(m.room)) return;
    // Keyed by the message it answers: a repeat is stored once.
    post(out, m.room, user_, "echo: " + m.body, "echo-" + std::to_string(m.seq));
  }

  void on_reply(std::uint64_t id, const sb::transport::ReplyBody& reply, const Now& now, Effects& out) override {
    auto it = setup_.find(id);
    const auto* e = std::get_if<sb::transport::ErrorReply>(&reply);
    if (e && e->code == sb::errc::unavailable && it != setup_.end()) {
      // The room's owner is not reachable yet (nodes starting, or one down): again soon.
      if (retry_.empty()) out.start_timer(0, now.steady + std::chrono::milliseconds(200));
      retry_.push_back(std::move(it->second));
    } else if (e) {
      spdlog::warn("bot: request {} failed: {}: {}", id, sb::errc_name(e->code), e->message);
    }
    if (it != setup_.end()) setup_.erase(it);
  }

 private:
  /// Creating and joining the echo rooms, retried until the owners answer.
  void setup(Effects& out, sb::transport::RequestBody body) {
    setup_.emplace(request(out, body), body);
  }

  Verdict judge(const std::string& body) const {
    const std::string text = lower(body);
    for (const auto& word : words_)
      if (text.find(word) != std::string::npos) return Verdict::refuse("the message holds the blocked word '" + word + "'");
    return {};
  }

  std::uint64_t checked_ = 0, refused_ = 0;
  std::map<std::uint64_t, sb::transport::RequestBody> setup_;
  std::vector<sb::transport::RequestBody> retry_;
  std::vector<std::string> words_;
  std::set<std::string> echo_rooms_;
  std::string user_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A Switchboard service: moderation hook and echo bot."};
  std::string config, service = "bot", node, words_file, user = "echo-bot";
  std::vector<std::string> echo;
  app.add_option("--config", config, "Topology file")->required()->check(CLI::ExistingFile);
  app.add_option("--service", service, "This service's name in the file")->capture_default_str();
  app.add_option("--node", node, "The node to use as a client (any node of the file)")->required();
  app.add_option("--words", words_file, "Blocked words, one per line")->check(CLI::ExistingFile);
  app.add_option("--echo", echo, "Rooms to echo (repeatable)");
  app.add_option("--user", user, "The user the bot posts as")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_default_logger(spdlog::stderr_color_mt("bot"));

  auto topology = sb::router::load_topology(config);
  for (const auto& e : topology.errors) std::cerr << e.to_string() << "\n";
  if (!topology.ok()) return 1;
  std::vector<std::string> words;
  if (!words_file.empty()) {
    std::ifstream in(words_file);
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != '#') words.push_back(lower(line));
  }
  auto options = sb::actors::service_options(topology.topology, service, node);
  if (!options) {
    std::cerr << "bot: " << options.error().message << "\n";
    return 1;
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto host = sb::actors::ServiceHost::start(*options, std::make_unique<Bot>(words, echo, user));
  if (!host) {
    std::cerr << "bot: " << host.error().message << "\n";
    return 1;
  }
  std::cout << "bot ready service=" << service << " endpoint=" << options->endpoint << " words=" << words.size()
            << std::endl;
  int signal = 0;
  sigwait(&stop, &signal);
  (*host)->stop();
  return 0;
}
