# Debian package: `cpack -G DEB` in the build directory makes nodeagent_<version>_amd64.deb
# (binaries, unit, sysusers file, /etc/nodeagent/config.yaml as a conffile). Depends comes
# from dpkg-shlibdeps on the binaries, plus libcurl4: the Kubernetes client dlopens it on
# first use (agent/kube/curl_library.h), which shlibdeps cannot see, and procps, whose
# /bin/kill the unit's ExecReload runs (a minimal Debian has neither).
# tests/deploy/package_test.sh installs the package into a fresh Debian 12.
set(CPACK_GENERATOR DEB)
# cpack installs what scripts/build.sh built instead of building every target (tests and
# benchmarks included) again first; `make install` likewise expects a build.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_PACKAGE_NAME nodeagent)
set(CPACK_PACKAGE_VENDOR nodeagent)
set(CPACK_PACKAGE_CONTACT "nodeagent maintainers <nodeagent@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-node agent for large Kubernetes clusters")
set(CPACK_PACKAGE_DESCRIPTION "nodeagentd tunes sysctls and conntrack, programs IPVS services, \
prefetches images over CRI and reports node status; nodeagentctl asks it what it is doing.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# DESTDIR staging, so the unit and the config are configured for /usr and /etc at install
# time (systemd/install_files.cmake) instead of escaping the staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4, procps")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
include(CPack)
