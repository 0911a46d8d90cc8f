// A service embedding Switchboard: it runs a node in its own process, talks to it
// over inproc (no network hop) with the client library, posts into a room, follows
// it, and reads the history back. Exit status 0 means every step did what it should.
//
//   embed_example DATA_DIR
#include <iostream>

#include <switchboard/actors/node.hpp>
#include <switchboard/client/client.hpp>

namespace sb = switchboard;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: embed_example DATA_DIR\n";
    return 2;
  }
  sb::actors::NodeOptions options;
  options.name = "embedded-service";
  options.data_dir = argv[1];
  options.client_endpoints = {};  // inproc only: this service keeps the node to itself
  options.pub_endpoints = {};
  options.presence_endpoints = {};
  options.presence_pub_endpoints = {};
  auto node = sb::actors::Node::start(options);
  if (!node) {
    std::cerr << "cannot start node: " << node.error().message << "\n";
    return 1;
  }

  sb::client::ClientOptions client_options;
  client_options.endpoint = sb::actors::kInprocClientEndpoint;
  client_options.context = &(*node)->context();
  sb::client::Client client(client_options);

  auto check = [](bool ok, const char* what) {
    if (!ok) std::cerr << "FAILED: " << what << "\n";
    return ok;
  };
  if (!check(client.create_room("alerts", "notifier").ok(), "create room")) return 1;
  auto last = client.last_seq("alerts");
  if (!check(last.ok(), "last seq")) return 1;
  if (!check(client.subscribe("alerts", *last).ok(), "subscribe")) return 1;

  auto ack = client.publish("alerts", "notifier", "disk almost full on db-3");
  if (!check(ack.ok(), "publish")) return 1;
  std::cout << "posted seq " << ack->seq << "\n";

  auto delivered = client.next(std::chrono::seconds(10));
  if (!check(delivered.ok() && delivered->has_value() && (*delivered)->seq == ack->seq, "delivery")) return 1;
  std::cout << "delivered seq " << (*delivered)->seq << ": " << (*delivered)->body << "\n";

  auto page = client.history("alerts", {10, {}, {}});
  if (!check(page.ok() && !page->messages.empty() && page->messages.back().seq == ack->seq, "history")) return 1;
  std::cout << "history holds " << page->messages.size() << " message(s)\n";
  (*node)->stop();
  return 0;
}
