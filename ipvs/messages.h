// Pure builders and parsers for IPVS generic netlink messages (family "IPVS", version 1,
// <linux/ip_vs.h>). Builders return one complete message (nlmsghdr + genlmsghdr +
// attributes) with seq 0 and pid 0: the socket stamps those. Byte-level tests pin the
// layout. Messages are assembled with NetlinkWriter (common/netlink_writer.h): a
// builder cannot fail.
#pragma once

#include <cstdint>
#include <vector>

#include "common/netlink_attr.h"
#include "common/result.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs {

using Message = std::vector<uint8_t>;

// genl-ctrl-list -n NAME   (CTRL_CMD_GETFAMILY: the family id the IPVS messages need)
Message buildGetFamily(const char* name);
// ipvsadm -A -t ADDR:PORT -s SCHED [-p TIMEOUT] [-b FLAGS]
Message buildAddService(uint16_t familyId, const Service& s);
// ipvsadm -E -t ADDR:PORT -s SCHED [-p TIMEOUT] [-b FLAGS]
Message buildEditService(uint16_t familyId, const Service& s);
// ipvsadm -D -t ADDR:PORT
Message buildDelService(uint16_t familyId, const ServiceKey& k);
// ipvsadm -a -t ADDR:PORT -r RADDR:RPORT -m|-i|-g -w WEIGHT [-x U] [-y L]
Message buildAddDest(uint16_t familyId, const ServiceKey& k, const Destination& d);
// ipvsadm -e -t ADDR:PORT -r RADDR:RPORT -m|-i|-g -w WEIGHT [-x U] [-y L]
Message buildEditDest(uint16_t familyId, const ServiceKey& k, const Destination& d);
// ipvsadm -d -t ADDR:PORT -r RADDR:RPORT
Message buildDelDest(uint16_t familyId, const ServiceKey& k, const DestKey& d);
// ipvsadm -Ln (services; NLM_F_DUMP is added by the socket)
Message buildGetServices(uint16_t familyId);
// ipvsadm -Ln -t ADDR:PORT (destinations of one service; dump)
Message buildGetDests(uint16_t familyId, const ServiceKey& k);
// ipvsadm --set TCP TCPFIN UDP
Message buildSetTimeouts(uint16_t familyId, const Timeouts& t);
// ipvsadm -L --timeout
Message buildGetTimeouts(uint16_t familyId);

// Reply parsers. Each takes the bytes of one reply message (the socket hands over exactly
// nlmsg_len bytes; a fuzzer may hand over anything), checks every attribute against the
// policy of its space and rejects a short or malformed one with an error naming it.
//
// Parse one reply of a service dump (IPVS_CMD_NEW_SERVICE with IPVS_CMD_ATTR_SERVICE).
[[nodiscard]] Result<ServiceState> parseServiceMessage(Bytes message);
// Parse one reply of a destination dump (IPVS_CMD_NEW_DEST with IPVS_CMD_ATTR_DEST); the
// destination's family defaults to `svcFamily` on kernels without IPVS_DEST_ATTR_ADDR_FAMILY.
[[nodiscard]] Result<DestinationState> parseDestMessage(Bytes message, uint16_t svcFamily);
// Parse the controller's CTRL_CMD_NEWFAMILY reply: the id of family `name`.
[[nodiscard]] Result<uint16_t> parseFamilyMessage(Bytes message, const char* name);
// Parse the IPVS_CMD_SET_CONFIG reply of a timeouts request.
[[nodiscard]] Result<Timeouts> parseTimeoutsMessage(Bytes message);

}  // namespace nodeagent::ipvs
