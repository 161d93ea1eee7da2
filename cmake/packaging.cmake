# Installation and the Debian package (issue 14). `cmake --install build` installs the layout
# below; `cmake --build build --target package` (CPack, DEB generator) packs the same layout,
# with CMAKE_INSTALL_PREFIX=/usr, into build/wsbridge_<version>-1_<arch>.deb. README.md
# ("Install as a Debian package") lists the files, and tests/e2e/package.test.mjs holds the
# package to that list and to lintian.
include(GNUInstallDirs)

# Absolute on purpose: the units read /etc/wsbridge/wsbridge.yaml, and Debian 12 (lintian's
# systemd-service-file-outside-lib) wants packaged units in /lib/systemd/system whatever the
# prefix.
set(WSBRIDGE_CONFIG_DIR /etc/wsbridge)
set(WSBRIDGE_UNIT_DIR /lib/systemd/system)
set(WSBRIDGE_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/wsbridge)
set(packaging_dir ${PROJECT_SOURCE_DIR}/packaging)
set(packaging_out ${CMAKE_BINARY_DIR}/packaging)

# A daemon for the administrator: sbin, like nginx and haproxy, with its page in section 8.
install(TARGETS wsbridge RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES ${packaging_dir}/wsbridge.yaml DESTINATION ${WSBRIDGE_CONFIG_DIR})
install(FILES ${packaging_dir}/deb/copyright ${PROJECT_SOURCE_DIR}/README.md
  DESTINATION ${WSBRIDGE_DOC_DIR})

# Every unit in systemd/, as it is there but for the binary's path: the units name a fixed
# path (/usr/sbin/wsbridge, or /usr/local/bin/wsbridge for a hand install), and ExecStart must
# name the binary this install puts under its prefix, known only at install time (CPack
# installs with the prefix /usr).
file(GLOB WSBRIDGE_UNITS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/systemd/*.service ${PROJECT_SOURCE_DIR}/systemd/*.socket)
set(WSBRIDGE_UNIT_NAMES "")
foreach(unit IN LISTS WSBRIDGE_UNITS)
  get_filename_component(name ${unit} NAME)
  string(APPEND WSBRIDGE_UNIT_NAMES " ${name}")
  install(CODE "
    file(READ [[${unit}]] text)
    string(REGEX REPLACE \"/usr(/local)?/s?bin/wsbridge\"
      \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}/wsbridge\" text \"\${text}\")
    file(WRITE [[${packaging_out}/units/${name}]] \"\${text}\")
    file(INSTALL [[${packaging_out}/units/${name}]] DESTINATION [[${WSBRIDGE_UNIT_DIR}]])")
endforeach()
string(STRIP "${WSBRIDGE_UNIT_NAMES}" WSBRIDGE_UNIT_NAMES)

# Debian policy §12.1 and §12.7: the manual page and the Debian changelog gzipped with -9n (no
# name, no timestamp: the same bytes every build). The changelog's top entry must be this
# version (the package test checks), so a release that changes the version adds an entry.
find_program(GZIP_EXECUTABLE gzip REQUIRED)
foreach(source ${PROJECT_SOURCE_DIR}/docs/wsbridge.8 ${packaging_dir}/deb/changelog.Debian)
  get_filename_component(name ${source} NAME)
  # No VERBATIM: the redirection is for the shell.
  add_custom_command(OUTPUT ${packaging_out}/${name}.gz
    COMMAND ${GZIP_EXECUTABLE} -9n -c ${source} > ${packaging_out}/${name}.gz DEPENDS ${source})
endforeach()
add_custom_target(wsbridge_packaging_files ALL
  DEPENDS ${packaging_out}/wsbridge.8.gz ${packaging_out}/changelog.Debian.gz)
install(FILES ${packaging_out}/wsbridge.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${packaging_out}/changelog.Debian.gz DESTINATION ${WSBRIDGE_DOC_DIR})

# Maintainer scripts (what dh_installsystemd would write) and the conffile list.
foreach(script postinst prerm postrm)
  configure_file(${packaging_dir}/deb/${script}.in ${packaging_out}/deb/${script} @ONLY)
endforeach()
file(CONFIGURE OUTPUT ${packaging_out}/deb/conffiles
  CONTENT "${WSBRIDGE_CONFIG_DIR}/wsbridge.yaml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wsbridge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "Seed 3fa31d73 maintainers <maintainers@users.noreply.b-seed-3fa31d73.example>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Revision 1: a non-native version, so the Debian changelog is changelog.Debian.gz (policy §12.7).
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from the binary's shared libraries (dpkg-shlibdeps, from dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "WebSocket reverse proxy with SSE and long-polling fallbacks")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "wsbridge puts one port in front of unchanged WebSocket backends.
Browsers reach it over WebSocket, Server-Sent Events or HTTP long-polling, so
clients behind proxies that block or buffer WebSocket still get a working
real-time connection; to the backend every client is an ordinary WebSocket
client. Sessions survive reconnects and transport changes without loss or
duplicates. It terminates TLS, enforces strict HTTP/1.1 and RFC 6455 limits,
and exports Prometheus metrics.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${packaging_out}/deb/conffiles
  ${packaging_out}/deb/postinst ${packaging_out}/deb/prerm ${packaging_out}/deb/postrm)
# 0755 for the scripts and 0644 for conffiles, whatever the checkout's modes (lintian checks).
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
