// The services file: strict validation with file:line and key; inotify reload; sysctls.
#include <gtest/gtest.h>
#include <linux/ip_vs.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/config.h"
#include "common/files.h"
#include "ipvs/module.h"
#include "ipvs/service_source.h"

namespace nodeagent::ipvs {
namespace {

TEST(ServiceFile, ParsesServicesAndEndpoints) {
  auto d = parseServiceFile(R"(services:
  - address: 10.96.0.10
    port: 80
    scheduler: wrr
    persistence: 3h
    masquerade: true
    endpoints:
      - {address: 10.244.1.5, port: 8080, weight: 3}
      - {address: 10.244.2.5, port: 8080}
  - address: fd00::53
    port: 53
    protocol: udp
    scheduler: mh
    scheduler_flags: [mh-port]
  - fwmark: 7
    forward: route
    endpoints:
      - {address: 192.168.0.9}
)",
                            "services.yaml");
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->size(), 3u);
  const auto& web = *d->at(*parseServiceKey("TCP 10.96.0.10:80"));
  EXPECT_EQ(web.service.scheduler, "wrr");
  EXPECT_EQ(web.service.flags, uint32_t(IP_VS_SVC_F_PERSISTENT));
  EXPECT_EQ(web.service.timeout, 10800u);
  EXPECT_TRUE(web.masquerade);
  ASSERT_EQ(web.dests.size(), 2u);
  EXPECT_EQ(web.dests.begin()->weight, 3u);
  const auto& dns = *d->at(*parseServiceKey("UDP [fd00::53]:53"));
  EXPECT_EQ(dns.service.flags, uint32_t(IP_VS_SVC_F_SCHED2));
  const auto& fwm = *d->at(*parseServiceKey("FWM 7 (inet)"));
  EXPECT_EQ(fwm.dests.begin()->forward, Forward::kDirect);
}

void expectError(const std::string& yaml, const std::string& want) {
  auto d = parseServiceFile(yaml, "svc.yaml");
  ASSERT_FALSE(d) << "accepted:\n" << yaml;
  EXPECT_NE(d.error().message().find(want), std::string::npos) << d.error().message();
}

TEST(ServiceFile, RejectsBadInputWithLineAndKey) {
  expectError("services:\n  - address: 10.96.0.300\n    port: 80\n", "svc.yaml:2");
  expectError("services:\n  - address: 10.96.0.300\n    port: 80\n", "address");
  expectError("services:\n  - address: 10.96.0.1\n    port: 0\n", "port");
  expectError("services:\n  - address: 10.96.0.1\n    port: 65536\n", "svc.yaml:3");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n    scheduler: fastest\n", "scheduler");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n  - address: 10.96.0.1\n    port: 80\n",
              "duplicate service TCP 10.96.0.1:80");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n    colour: red\n", "colour");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n    endpoints:\n      - {address: fd00::1, port: 80}\n",
              "address family");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n    endpoints:\n      - {address: 10.0.0.1, port: 80}\n      - {address: 10.0.0.1, port: 80}\n",
              "duplicate endpoint");
  // One bad entry rejects the whole file.
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n  - address: 10.96.0.2\n    port: -1\n", "svc.yaml:5");
}

TEST(ServiceFile, RejectsWhatTheKernelWouldRefuse) {
  const std::string svc = "services:\n  - address: 10.96.0.1\n    port: 80\n";
  // ERANGE from the kernel: a lower threshold alone, or above the upper one.
  expectError(svc + "    endpoints:\n      - {address: 10.0.0.1, port: 80, lower_threshold: 5}\n",
              "svc.yaml:5:39: services[0].endpoints[0].lower_threshold: needs an upper_threshold");
  expectError(svc + "    endpoints:\n      - {address: 10.0.0.1, port: 80, upper_threshold: 4, lower_threshold: 5}\n",
              "svc.yaml:5:59: services[0].endpoints[0].lower_threshold: must not exceed upper_threshold (4)");
  EXPECT_TRUE(parseServiceFile(svc + "    endpoints:\n      - {address: 10.0.0.1, port: 80, upper_threshold: 5, "
                                     "lower_threshold: 5}\n", "svc.yaml"));
  // EINVAL: only tunnelling mixes families; route and masq (fwmark services too) do not.
  expectError(svc + "    forward: route\n    endpoints:\n      - {address: fd00::1, port: 80}\n",
              "svc.yaml:6:10: services[0].endpoints[0].address: \"fd00::1\" is not of the service's address family");
  expectError("services:\n  - fwmark: 7\n    forward: masq\n    endpoints:\n      - {address: fd00::1}\n",
              "svc.yaml:5:10: services[0].endpoints[0].address: \"fd00::1\" is not of the service's address family");
  expectError("services:\n  - fwmark: 7\n    family: inet6\n    endpoints:\n      - {address: 10.0.0.1}\n",
              "services[0].endpoints[0].address: \"10.0.0.1\" is not of the service's address family");
  EXPECT_TRUE(parseServiceFile(svc + "    forward: tunnel\n    endpoints:\n      - {address: fd00::1, port: 80}\n",
                               "svc.yaml"));
  // Direct routing and tunnelling cannot rewrite the port.
  expectError(svc + "    forward: route\n    endpoints:\n      - {address: 10.0.0.1, port: 8080}\n",
              "svc.yaml:6:29: services[0].endpoints[0].port: must equal the service port 80 with forward: route");
  expectError(svc + "    forward: tunnel\n    endpoints:\n      - {address: 10.0.0.1, port: 8080}\n",
              "services[0].endpoints[0].port: must equal the service port 80 with forward: tunnel");
  EXPECT_TRUE(parseServiceFile(svc + "    forward: route\n    endpoints:\n      - {address: 10.0.0.1, port: 80}\n",
                               "svc.yaml"));
}

TEST(ServiceFile, RejectsASecondDocument) {
  expectError("services: []\n---\nservices:\n  - {address: 10.96.0.1, port: 80}\n",
              "svc.yaml:2:1: a second YAML document starts here");
}

std::filesystem::path tempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ServiceFile, ADirectoryOrAnOversizedFileIsAnErrorNotAnAbort) {
  auto dir = tempDir("ipvs-src-dir");
  std::string path = (dir / "services.yaml").string();
  std::filesystem::create_directories(path);  // a directory where the file should be
  FileServiceSource src(path);
  auto d = src.load();
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message(), "read services file: " + path + ": Is a directory");
  std::filesystem::remove(path);
  // Over the cap: rejected by its size before any parsing.
  {
    std::ofstream big(path);
    std::string line = "# " + std::string(1022, 'x') + "\n";
    for (size_t i = 0; i <= kMaxServicesFileBytes / line.size(); ++i) big << line;
  }
  d = src.load();
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message(), "read services file: " + path + ": larger than the limit of " +
                                     std::to_string(kMaxServicesFileBytes) + " bytes");
  ASSERT_TRUE(writeFileAtomic(path, "services:\n  - {address: 10.96.0.1, port: 80}\n"));
  d = src.load();
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(ServiceFile, StreamedParseKeepsYamlFeaturesAndMarks) {
  // Flow style, anchors and aliases across entries, comments: all as YAML::Load reads them.
  auto d = parseServiceFile(R"(# generated
services: [{address: 10.96.0.1, port: 80, endpoints: &eps [{address: 10.244.0.1, port: 8080}]},
           {address: 10.96.0.2, port: 80, endpoints: *eps}]
)",
                            "svc.yaml");
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ(d->rbegin()->second->dests.size(), 1u);
  EXPECT_EQ(d->rbegin()->second->dests.begin()->key.toString(), "10.244.0.1:8080");
  // Errors outside the services list keep their line, column and key.
  expectError("services: []\nbogus: 1\n", "svc.yaml:2:1: bogus: unknown key");
  expectError("services: 7\n", "svc.yaml:1:11: services: must be a list");
  expectError("- 1\n", "must be a mapping");
  expectError("services:\n  - address: 10.96.0.1\n    port: [80\n", "svc.yaml:");  // syntax error
  expectError("services:\n  - 5\n", "svc.yaml:2:5: services[0]: must be a mapping");
  expectError("services:\n  - address: 10.96.0.1\n    port: 80\n  - address: 10.96.0.1\n    port: 80\n",
              "svc.yaml:4:5: services[1].address: duplicate service TCP 10.96.0.1:80 (first at services[0])");
  EXPECT_TRUE(parseServiceFile("", "svc.yaml"));
  EXPECT_TRUE(parseServiceFile("services:\n", "svc.yaml"));
}

TEST(ServiceFile, ReloadSharesUnchangedEntries) {
  std::string text = "services:\n  - {address: 10.96.0.1, port: 80}\n  - {address: 10.96.0.2, port: 80}\n";
  auto first = parseServiceFile(text, "svc.yaml");
  ASSERT_TRUE(first);
  auto again = parseServiceFile(text + "  - {address: 10.96.0.3, port: 80, scheduler: wrr}\n", "svc.yaml", &*first);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 3u);
  for (const auto& [k, s] : *first) EXPECT_EQ(again->at(k).get(), s.get()) << k.toString();  // same object
  auto changed = parseServiceFile("services:\n  - {address: 10.96.0.1, port: 80, masquerade: true}\n", "svc.yaml",
                                  &*first);
  ASSERT_TRUE(changed);
  EXPECT_NE(changed->begin()->second.get(), first->begin()->second.get());
  EXPECT_TRUE(changed->begin()->second->masquerade);
}

TEST(ServiceFile, WatchSeesAtomicReplace) {
  auto dir = std::filesystem::temp_directory_path() / ("ipvs-src-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "services.yaml").string();
  ASSERT_TRUE(writeFileAtomic(path, "services: []\n"));
  // The watch runs on an event loop (the daemon's main loop), here on a thread of the test.
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.has_value());
  std::thread looper([&] { (void)(*loop)->run(); });
  FileServiceSource src(path, (*loop)->poster());
  std::atomic<int> changes{0};
  std::atomic<bool> onLoopThread{true};
  src.watch([&] {
    if (std::this_thread::get_id() != looper.get_id()) onLoopThread = false;
    ++changes;
  });
  ASSERT_TRUE(writeFileAtomic(path, "services:\n  - {address: 10.96.0.1, port: 80}\n"));
  for (int i = 0; i < 200 && changes == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GT(changes.load(), 0);
  EXPECT_TRUE(onLoopThread);
  auto d = src.load();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->size(), 1u);
  // After stop() the callback is not called again, whatever happens to the file.
  src.stop();
  int seen = changes;
  ASSERT_TRUE(writeFileAtomic(path, "services: []\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(changes.load(), seen);
  (*loop)->poster().post([](EventLoop& l) { l.exit(0); });
  looper.join();
  std::filesystem::remove_all(dir);
}

TEST(IpvsSysctls, ConnReuseModeFollowsKernelVersion) {
  auto has = [](const std::string& rel) {
    for (const auto& w : wantedSysctls(rel))
      if (w.key == "net.ipv4.vs.conn_reuse_mode") return true;
    return false;
  };
  EXPECT_FALSE(has("3.10.0-1160.el7.x86_64"));
  EXPECT_TRUE(has("4.19.0-21-amd64"));
  EXPECT_TRUE(has("5.4.0-100-generic"));
  EXPECT_FALSE(has("5.9.0"));
  EXPECT_FALSE(has("6.1.0-56-amd64"));
  EXPECT_EQ(wantedSysctls("6.1.0").size(), 3u);
}

TEST(IpvsConfig, DisabledByDefaultAndStrict) {
  auto c = daemon::parseConfig("", "c.yaml");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->ipvs.enabled);
  EXPECT_EQ(c->ipvs.interface, "nodeagent-ipvs0");
  EXPECT_EQ(c->toJson().get("ipvs").get("timeouts").get("tcp").asString(), "24h");
  auto bad = daemon::parseConfig("ipvs:\n  enabled: true\n  owned_cidrs: [10.96.0.0/33]\n  bogus: 1\n", "c.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("c.yaml:3"), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("bogus"), std::string::npos);
}

}  // namespace
}  // namespace nodeagent::ipvs
