// A message beyond the socket's size limit costs only its own connection. (Bad
// frames, each with its error code, are in bad_inputs_catalogue_test.cpp.)
#include <gtest/gtest.h>

#include <zmq.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::options_for;

TEST(BadInput, MessageOverTheSocketLimitDropsOnlyThatConnection) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  client::connect_socket(rogue, options_for(node), node.client_endpoint());  // admitted, then misbehaving
  std::string huge(2 * 1024 * 1024, 'z');  // beyond ZMQ_MAXMSGSIZE (1 MiB)
  rogue.send(zmq::buffer(huge), zmq::send_flags::none);

  client::Client honest(options_for(node));
  ASSERT_TRUE(honest.create_room("after", "ann"));
  auto ack = honest.publish("after", "ann", "still here");
  ASSERT_TRUE(ack) << ack.error().message;
  EXPECT_EQ(ack->seq, 1u);
  zmq::pollitem_t item{rogue.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(200)), 0) << "an oversized message got a reply";
  EXPECT_EQ(node.stop(), 0);
}
