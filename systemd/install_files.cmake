# Install-time part of systemd/CMakeLists.txt: the unit configured for the install prefix,
# and the default config where that prefix's system configuration lives (GNUInstallDirs'
# rule: /etc for the /usr prefix, PREFIX/etc otherwise). file(INSTALL) adds DESTDIR.
set(CMAKE_INSTALL_BINDIR "${NODEAGENT_BINDIR}")
configure_file("${NODEAGENT_UNIT_IN}" "${NODEAGENT_UNIT_TMP}" @ONLY)
file(INSTALL "${NODEAGENT_UNIT_TMP}" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${CMAKE_INSTALL_PREFIX}/etc")
endif()
file(INSTALL "${NODEAGENT_CONFIG}" DESTINATION "${sysconfdir}/nodeagent" RENAME config.yaml)
