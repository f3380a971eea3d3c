// Byte-level tests of the nftables element messages the IPVS proxy's table sends for a
// service change (the table's rules and sets are checked for real in ipvs_nft_netns_test).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <vector>

#include "netfilter/nft_proxy_table.h"

namespace nodeagent::netfilter {
namespace {

NftService service(int family, std::array<uint8_t, 16> addr, uint8_t proto, uint16_t port) {
  NftService s;
  s.family = family;
  s.addr = addr;
  s.protocol = proto;
  s.port = port;
  return s;
}

TEST(NftMsg, ServiceKeyIsAddrProtoPortEachPaddedToFourBytes) {
  // 10.96.0.10 . tcp . 80
  EXPECT_EQ(nftServiceKey(service(AF_INET, {10, 96, 0, 10}, IPPROTO_TCP, 80)),
            (std::vector<uint8_t>{10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0}));
  // fd00::10 . udp . 53
  std::vector<uint8_t> v6 = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 17, 0, 0, 0, 0, 53, 0, 0};
  EXPECT_EQ(nftServiceKey(service(AF_INET6, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}, IPPROTO_UDP, 53)), v6);
}

// nft add element inet T svc4 { 10.96.0.10 . tcp . 80 }
TEST(NftMsg, AddElement) {
  std::vector<std::vector<uint8_t>> keys{nftServiceKey(service(AF_INET, {10, 96, 0, 10}, IPPROTO_TCP, 443))};
  std::vector<uint8_t> want = {
      0x44, 0, 0, 0,            // nlmsg_len 68
      0x0c, 0x0a,               // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM
      0x05, 0x04,               // NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
      7, 0, 0, 0,               // seq
      0, 0, 0, 0,               // pid
      1, 0, 0, 0,               // nfgenmsg: NFPROTO_INET, version 0, res_id 0
      9, 0, 2, 0,  's', 'v', 'c', '4', 0, 0, 0, 0,  // NFTA_SET_ELEM_LIST_SET "svc4"
      6, 0, 1, 0,  'T', 0, 0, 0,                    // NFTA_SET_ELEM_LIST_TABLE "T"
      0x1c, 0, 0x03, 0x80,      // NFTA_SET_ELEM_LIST_ELEMENTS (nested)
      0x18, 0, 0x01, 0x80,      //   NFTA_LIST_ELEM (nested)
      0x14, 0, 0x01, 0x80,      //     NFTA_SET_ELEM_KEY (nested)
      0x10, 0, 0x01, 0,         //       NFTA_DATA_VALUE, 12 bytes:
      10, 96, 0, 10, 6, 0, 0, 0, 0x01, 0xbb, 0, 0,  // 10.96.0.10 . tcp . 443
  };
  EXPECT_EQ(buildSetElemsMessage("T", "svc4", keys, true, 7), want);
}

// nft delete element inet T vips4 { 10.96.0.10, 10.96.0.11 }
TEST(NftMsg, DeleteElements) {
  std::vector<std::vector<uint8_t>> keys{{10, 96, 0, 10}, {10, 96, 0, 11}};
  std::vector<uint8_t> want = {
      0x4c, 0, 0, 0,            // nlmsg_len 76
      0x0e, 0x0a,               // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELSETELEM
      0x05, 0x00,               // NLM_F_REQUEST | NLM_F_ACK
      9, 0, 0, 0, 0, 0, 0, 0,   // seq 9, pid 0
      1, 0, 0, 0,               // nfgenmsg: NFPROTO_INET
      10, 0, 2, 0, 'v', 'i', 'p', 's', '4', 0, 0, 0,  // NFTA_SET_ELEM_LIST_SET "vips4"
      6, 0, 1, 0,  'T', 0, 0, 0,                      // NFTA_SET_ELEM_LIST_TABLE "T"
      0x24, 0, 0x03, 0x80,      // NFTA_SET_ELEM_LIST_ELEMENTS (nested)
      0x10, 0, 0x01, 0x80,      //   list element 1 (libnftnl numbers them)
      0x0c, 0, 0x01, 0x80,      //     NFTA_SET_ELEM_KEY
      0x08, 0, 0x01, 0,  10, 96, 0, 10,  // NFTA_DATA_VALUE 10.96.0.10
      0x10, 0, 0x02, 0x80,      //   list element 2
      0x0c, 0, 0x01, 0x80,      //     NFTA_SET_ELEM_KEY
      0x08, 0, 0x01, 0,  10, 96, 0, 11,  // NFTA_DATA_VALUE 10.96.0.11
  };
  EXPECT_EQ(buildSetElemsMessage("T", "vips4", keys, false, 9), want);
}

}  // namespace
}  // namespace nodeagent::netfilter
