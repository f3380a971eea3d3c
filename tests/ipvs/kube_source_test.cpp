// The Kubernetes source driven through its list/watch handlers (no API server: the
// kube tier runs the real one): relists, only changed services re-translated, bad objects
// counted; the health-check answer byte for byte and over a real loopback socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipvs/health_server.h"
#include "ipvs/kube_source.h"
#include "ipvs/module.h"

namespace nodeagent::ipvs {
namespace {

std::string svcJson(const std::string& name, const std::string& ip, const std::string& extra = "") {
  return R"({"metadata":{"namespace":"default","name":")" + name + R"(","uid":"uid-)" + name +
         R"("},"spec":{"clusterIP":")" + ip + R"(","ports":[{"name":"http","port":80}])" + extra + "}}";
}
std::string sliceJson(const std::string& svc, const std::string& addr) {
  return R"({"metadata":{"namespace":"default","name":")" + svc + R"(-1","labels":{"kubernetes.io/service-name":")" +
         svc + R"("}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[{"addresses":[")" + addr +
         R"("],"conditions":{"ready":true}}]})";
}
std::string list(const std::vector<std::string>& items) {
  std::string s = R"({"metadata":{"resourceVersion":"10"},"items":[)";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
  return s + "]}";
}
std::string event(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}";
}

class KubeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::ClusterConfig cc;
    cc.server = "https://127.0.0.1:1";  // never contacted: the handlers are called directly
    auto c = kube::Client::create(cc, {});
    ASSERT_TRUE(c.has_value()) << c.error().message();
    client_ = std::move(*c);
    KubeSourceOptions o;
    o.nodeName = "node-a";
    o.localAddresses = [] { return std::vector<Address>{*Address::parse("192.168.1.10")}; };
    source_ = std::make_unique<KubeServiceSource>(*client_, o);
  }
  void listNodes(const std::vector<std::string>& nodes = {}) {
    ASSERT_TRUE(source_->onNodePage(list(nodes), true).has_value());
    source_->onNodeListDone();
  }
  void listAll(const std::vector<std::string>& services, const std::vector<std::string>& slices) {
    ASSERT_TRUE(source_->onServicePage(list(services), true).has_value());
    source_->onServiceListDone();
    ASSERT_TRUE(source_->onSlicePage(list(slices), true).has_value());
    source_->onSliceListDone();
  }
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<KubeServiceSource> source_;
};

TEST_F(KubeSourceTest, NothingBeforeTheFirstListsThenTheWholeSet) {
  EXPECT_FALSE(source_->ready());
  EXPECT_FALSE(source_->load().has_value());
  listAll({svcJson("a", "10.96.0.1"), svcJson("b", "10.96.0.2")}, {sliceJson("a", "10.244.0.1")});
  EXPECT_FALSE(source_->ready());  // the Node list is still missing
  listNodes();
  ASSERT_TRUE(source_->ready());
  auto d = source_->load();
  ASSERT_TRUE(d.has_value()) << d.error().message();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ(d->begin()->second->name, "default/a:http");
  EXPECT_EQ(d->begin()->second->dests.size(), 1u);
}

TEST_F(KubeSourceTest, RelistOfUnchangedObjectsChangesNothing) {
  listNodes();
  listAll({svcJson("a", "10.96.0.1"), svcJson("b", "10.96.0.2")}, {sliceJson("a", "10.244.0.1")});
  auto first = source_->load();
  ASSERT_TRUE(first.has_value());
  // A 410 relist returns the same objects: every service keeps its object.
  listAll({svcJson("a", "10.96.0.1"), svcJson("b", "10.96.0.2")}, {sliceJson("a", "10.244.0.1")});
  auto second = source_->load(&*first);
  ASSERT_TRUE(second.has_value());
  ASSERT_EQ(second->size(), 2u);
  for (auto a = first->begin(), b = second->begin(); a != first->end(); ++a, ++b) EXPECT_EQ(a->second, b->second);
  // One endpoint change: only that service gets a new object.
  ASSERT_TRUE(source_->onSliceEvent(event("MODIFIED", sliceJson("a", "10.244.0.2"))).has_value());
  auto third = source_->load(&*second);
  ASSERT_TRUE(third.has_value());
  EXPECT_NE(third->begin()->second, second->begin()->second);
  EXPECT_EQ(std::next(third->begin())->second, std::next(second->begin())->second);
  EXPECT_EQ(third->begin()->second->dests.begin()->key.toString(), "10.244.0.2:8080");
  // A relist without service b deletes it.
  listAll({svcJson("a", "10.96.0.1")}, {sliceJson("a", "10.244.0.2")});
  EXPECT_EQ(source_->load()->size(), 1u);
}

TEST_F(KubeSourceTest, InvalidServiceIsCountedAndReportedOnceOthersProgrammed) {
  listNodes();
  listAll({svcJson("good", "10.96.0.1"), svcJson("bad", "10.96.0.999")}, {});
  auto d = source_->load();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->size(), 1u);
  auto st = source_->status();
  EXPECT_EQ(st.programmed, 1u);
  EXPECT_EQ(st.invalid, 1u);
  ASSERT_EQ(st.problems.size(), 1u);
  EXPECT_EQ(st.problems[0], "default/bad: spec.clusterIPs[0]: \"10.96.0.999\" is not an IP address");
  auto inv = source_->takeNewInvalid();
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv[0].uid, "uid-bad");
  // The next pass does not report it again; fixing it clears it.
  ASSERT_TRUE(source_->onServiceEvent(event("MODIFIED", svcJson("good", "10.96.0.1", R"(,"type":"ClusterIP")"))).has_value());
  ASSERT_TRUE(source_->load().has_value());
  EXPECT_TRUE(source_->takeNewInvalid().empty());
  ASSERT_TRUE(source_->onServiceEvent(event("MODIFIED", svcJson("bad", "10.96.0.9"))).has_value());
  EXPECT_EQ(source_->load()->size(), 2u);
  EXPECT_EQ(source_->status().invalid, 0u);
}

TEST_F(KubeSourceTest, NodeZoneChangeRetranslatesAndHealthChecksFollow) {
  listNodes({R"({"metadata":{"name":"node-a","labels":{"topology.kubernetes.io/zone":"z1"}}})"});
  listAll({R"({"metadata":{"namespace":"default","name":"lb"},"spec":{"type":"LoadBalancer","clusterIP":"10.96.0.5",
             "externalTrafficPolicy":"Local","healthCheckNodePort":32100,"ports":[{"name":"http","port":80,"nodePort":30100}]}})"},
          {R"({"metadata":{"namespace":"default","name":"lb-1","labels":{"kubernetes.io/service-name":"lb"}},
             "addressType":"IPv4","ports":[{"name":"http","port":8080}],
             "endpoints":[{"addresses":["10.244.0.7"],"nodeName":"node-a"}]})"});
  auto d = source_->load();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->size(), 2u);  // ClusterIP and the NodePort on 192.168.1.10
  auto hc = source_->healthChecks();
  ASSERT_EQ(hc.size(), 1u);
  EXPECT_EQ(hc.at(32100).localEndpoints, 1u);
  EXPECT_EQ(hc.at(32100).name, "lb");
}

TEST_F(KubeSourceTest, SliceFollowsItsLabelAndAPagedRelistDeletesOnlyWhatNoPageHad) {
  listNodes();
  listAll({svcJson("a", "10.96.0.1"), svcJson("b", "10.96.0.2")}, {sliceJson("a", "10.244.0.1")});
  auto first = source_->load();
  ASSERT_TRUE(first.has_value());
  auto dests = [](const DesiredState& d, const char* vip) {
    return d.at(*parseServiceKey(std::string("TCP ") + vip + ":80"))->dests.size();
  };
  EXPECT_EQ(dests(*first, "10.96.0.1"), 1u);
  EXPECT_EQ(dests(*first, "10.96.0.2"), 0u);
  // Relabelled to service b: it leaves a and joins b.
  std::string moved = R"({"metadata":{"namespace":"default","name":"a-1","labels":{"kubernetes.io/service-name":"b"}},
    "addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[{"addresses":["10.244.0.1"]}]})";
  ASSERT_TRUE(source_->onSliceEvent(event("MODIFIED", moved)).has_value());
  auto second = source_->load(&*first);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(dests(*second, "10.96.0.1"), 0u);
  EXPECT_EQ(dests(*second, "10.96.0.2"), 1u);
  EXPECT_EQ(source_->status().slices, 1u);
  // The label removed: no service's slice any more.
  std::string unlabelled = R"({"metadata":{"namespace":"default","name":"a-1"},
    "addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[{"addresses":["10.244.0.1"]}]})";
  ASSERT_TRUE(source_->onSliceEvent(event("MODIFIED", unlabelled)).has_value());
  auto third = source_->load(&*second);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(dests(*third, "10.96.0.2"), 0u);
  EXPECT_EQ(source_->status().slices, 0u);
  // A relist in two pages: b and the new slices come in different pages; a, in neither, goes.
  auto page = [](const std::vector<std::string>& items, const char* cont) {
    std::string s = R"({"metadata":{"resourceVersion":"20","continue":")" + std::string(cont) + R"("},"items":[)";
    for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
    return s + "]}";
  };
  ASSERT_TRUE(source_->onServicePage(page({svcJson("c", "10.96.0.3")}, "next"), true).has_value());
  ASSERT_TRUE(source_->onServicePage(page({svcJson("b", "10.96.0.2")}, ""), false).has_value());
  source_->onServiceListDone();
  ASSERT_TRUE(source_->onSlicePage(page({sliceJson("c", "10.244.0.3")}, "next"), true).has_value());
  ASSERT_TRUE(source_->onSlicePage(page({sliceJson("b", "10.244.0.2")}, ""), false).has_value());
  source_->onSliceListDone();
  auto fourth = source_->load(&*third);
  ASSERT_TRUE(fourth.has_value());
  ASSERT_EQ(fourth->size(), 2u);
  EXPECT_EQ(dests(*fourth, "10.96.0.2"), 1u);
  EXPECT_EQ(dests(*fourth, "10.96.0.3"), 1u);
  EXPECT_EQ(source_->status().services, 2u);
  EXPECT_EQ(source_->status().slices, 2u);
}

TEST(HealthServer, AnswersAsKubeProxy) {
  EXPECT_EQ(healthResponse({"default", "web", 2}),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            "X-Load-Balancing-Endpoint-Weight: 2\r\nContent-Length: 114\r\nConnection: close\r\n\r\n"
            "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n"
            "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}");
  EXPECT_EQ(healthResponse({"default", "web", 0}).substr(0, 33), "HTTP/1.1 503 Service Unavailable\r");
}

std::string get(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "connect failed";
  }
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  ::close(fd);
  return out;
}

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(HealthServer, ServesAndFollowsUpdatesOnLoopback) {
  HealthCheckServer server("127.0.0.1");
  uint16_t port = freePort();
  ASSERT_TRUE(server.update({{port, HealthTarget{"default", "web", 1}}}).has_value());
  EXPECT_EQ(get(port).substr(0, 15), "HTTP/1.1 200 OK");
  ASSERT_TRUE(server.update({{port, HealthTarget{"default", "web", 0}}}).has_value());
  EXPECT_EQ(get(port).substr(0, 12), "HTTP/1.1 503");
  ASSERT_TRUE(server.update({}).has_value());
  EXPECT_EQ(server.listeners(), 0u);
  EXPECT_EQ(get(port), "connect failed");
}

TEST(ServiceEvent, NamesTheServiceAndTheProblem) {
  EXPECT_EQ(buildServiceEvent({"shop", "cart", "u-1", "spec.ports[0].port: 0 is not a port (1 to 65535)"}, "cart.1a",
                              "node-a", "2026-12-02T03:00:00Z"),
            R"J({"apiVersion":"v1","kind":"Event","metadata":{"name":"cart.1a","namespace":"shop"},)J"
            R"J("involvedObject":{"apiVersion":"v1","kind":"Service","namespace":"shop","name":"cart","uid":"u-1"},)J"
            R"J("reason":"ServiceNotProgrammed","message":"nodeagent's IPVS proxy on node-a skipped this service: )J"
            R"J(spec.ports[0].port: 0 is not a port (1 to 65535)","type":"Warning",)J"
            R"J("source":{"component":"nodeagent","host":"node-a"},"firstTimestamp":"2026-12-02T03:00:00Z",)J"
            R"J("lastTimestamp":"2026-12-02T03:00:00Z","count":1,"reportingComponent":"nodeagent","reportingInstance":"node-a"})J");
}

}  // namespace
}  // namespace nodeagent::ipvs
