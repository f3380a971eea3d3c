// IP address literals: the text form both IPVS and conntrack code parse and print.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace nodeagent {

// Parses an IPv4 or IPv6 literal into `bytes` (network order, IPv4 in the first 4).
// Returns AF_INET or AF_INET6, or 0 when the text is neither.
int parseIpLiteral(std::string_view text, std::array<uint8_t, 16>& bytes);

// The literal for `family` and `bytes`; "" for a family other than AF_INET/AF_INET6.
std::string formatIpLiteral(int family, const std::array<uint8_t, 16>& bytes);

}  // namespace nodeagent
