#!/usr/bin/env bash
# Builds the enc365-nginx .deb: packaging/build-deb.sh [OUTDIR]   (default: target/debian)
#
# Why a script and not cargo-deb or debhelper: everything it needs (cargo, dpkg-deb,
# dpkg-shlibdeps, strip, gzip) is already on a Debian build host, so CI compiles no extra tool.
# The package metadata lives in packaging/debian/ as plain files (control template, conffiles,
# maintainer scripts, DEP-5 copyright, changelog); this script only fills in the version, the
# architecture, the shared-library dependencies and the installed size, stages the tree and runs
# `dpkg-deb --build --root-owner-group`.
#
# Manual pages and completions are generated from the clap definitions by the binaries themselves
# (hidden `enc365-nginx generate man|completions DIR`, `enc365-sim --generate-docs DIR`).
#
# ENC365_DEB_PROFILE=dev packages the debug build (what the test suite has already compiled);
# the default is the release build. Prints the path of the .deb on stdout.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-target/debian}
profile=${ENC365_DEB_PROFILE:-release}
case "$profile" in
    dev) bindir=target/debug ;;
    *) bindir=target/$profile ;;
esac

command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null || {
    echo "build-deb: dpkg-deb and dpkg-shlibdeps are needed: apt-get install dpkg-dev" >&2
    exit 2
}

# Version: the changelog's top entry must be Cargo's version plus a Debian revision.
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb_version=$(sed -n '1s/^enc365-nginx (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "${deb_version%-*}" != "$cargo_version" ]; then
    echo "build-deb: packaging/debian/changelog is at $deb_version but Cargo.toml at $cargo_version;" \
        "add a changelog entry for $cargo_version-1" >&2
    exit 2
fi
arch=$(dpkg --print-architecture)

cargo build --locked --quiet --profile "$profile" --bin enc365-nginx --bin enc365-sim >&2

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

# Binaries, stripped the way dh_strip does.
install -d -m 0755 "$stage/usr/bin"
for bin in enc365-nginx enc365-sim; do
    install -m 0755 "$bindir/$bin" "$stage/usr/bin/$bin"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/bin/$bin"
done

# Manual pages and completions, from the clap definitions.
gen=$out/generated
rm -rf "$gen"
"$stage/usr/bin/enc365-nginx" generate man "$gen/man" >/dev/null
"$stage/usr/bin/enc365-nginx" generate completions "$gen" >/dev/null
"$stage/usr/bin/enc365-sim" --generate-docs "$gen" >/dev/null
install -d -m 0755 "$stage/usr/share/man/man1"
for page in "$gen"/man/*.1; do
    gzip -9n <"$page" >"$stage/usr/share/man/man1/$(basename "$page").gz"
    chmod 0644 "$stage/usr/share/man/man1/$(basename "$page").gz"
done
for bin in enc365-nginx enc365-sim; do
    install -D -m 0644 "$gen/bash/$bin" "$stage/usr/share/bash-completion/completions/$bin"
    install -D -m 0644 "$gen/zsh/_$bin" "$stage/usr/share/zsh/vendor-completions/_$bin"
    install -D -m 0644 "$gen/fish/$bin.fish" "$stage/usr/share/fish/vendor_completions.d/$bin.fish"
done

# systemd units (the cluster agent's is installed, not enabled), the config template (a conffile, 0600: it will hold the access token), the
# nginx snippets we write, the docs.
install -D -m 0644 packaging/systemd/enc365-nginx-renew.service \
    "$stage/lib/systemd/system/enc365-nginx-renew.service"
install -D -m 0644 packaging/systemd/enc365-nginx-renew.timer \
    "$stage/lib/systemd/system/enc365-nginx-renew.timer"
install -D -m 0644 packaging/systemd/enc365-nginx-agent.service \
    "$stage/lib/systemd/system/enc365-nginx-agent.service"
install -d -m 0755 "$stage/etc/enc365-nginx"
install -m 0600 packaging/config.toml "$stage/etc/enc365-nginx/config.toml"
for template in templates/*; do
    install -D -m 0644 "$template" "$stage/usr/share/enc365-nginx/$(basename "$template")"
done
doc=$stage/usr/share/doc/enc365-nginx
install -d -m 0755 "$doc"
gzip -9n <packaging/debian/changelog >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
crates=$(cargo metadata --locked --format-version 1 --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" |
    python3 "$root/packaging/crate-licenses.py")
python3 -c 'import sys; print(sys.stdin.read().replace("@CRATES@", sys.argv[1]), end="")' \
    "$crates" <packaging/debian/copyright >"$doc/copyright"
chmod 0644 "$doc/copyright"

# Control files. Depends: the shared libraries the binaries link, as dpkg-shlibdeps computes them
# (it wants a debian/control to read, so it runs in a scratch directory).
shlibs=$out/shlibs
rm -rf "$shlibs"
mkdir -p "$shlibs/debian"
printf 'Source: enc365-nginx\n\nPackage: enc365-nginx\nArchitecture: any\n' >"$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O "$stage/usr/bin/enc365-nginx" "$stage/usr/bin/enc365-sim" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || {
    echo "build-deb: dpkg-shlibdeps found no library dependencies" >&2
    exit 1
}
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
# The Maintainer field, by Debian's convention from DEBFULLNAME and DEBEMAIL when both are set.
maintainer="enc365-nginx maintainers <maintainers@enc365-nginx.invalid>"
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
    maintainer="$DEBFULLNAME <$DEBEMAIL>"
fi
case $maintainer in *['|/&\']* | *$'\n'*)
    echo "build-deb: DEBFULLNAME/DEBEMAIL may not contain '|', '/', '&', '\\' or a newline" >&2
    exit 1
    ;;
esac
sed -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s|@MAINTAINER@|$maintainer|" \
    packaging/debian/control >"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

# Reproducible: every timestamp is the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
find "$stage" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

deb=$out/enc365-nginx_${deb_version}_${arch}.deb
dpkg-deb --build --root-owner-group -Zxz "$stage" "$deb" >/dev/null
echo "$deb"
