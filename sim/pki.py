"""The bench's test PKI: an HCA test root and issuing CA, staff-card certificates for every staff
profile (valid, expired, revoked, or from an untrusted root), and the issuing CA's CRL.

Why fixed keys: the bench runs in several processes (the console's reader
workers hold the virtual cards, the console checks chains against its trust
store, the control API signs Mobile HCA logins), and they must all agree on the
same CAs and certificates. RSA keys generated per process would not, so the
keys are built from fixed primes below and every other input (names, serial
numbers, dates) is fixed too: each process builds byte-identical certificates
and CRL, once (`bench_pki` is cached), in a few milliseconds.

SIMULATION SECRETS, public by design: these private keys protect nothing and
must never be trusted outside the bench.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sim.profiles import PROFILES, StaffCardData

_UTC = datetime.UTC

CA_NOT_BEFORE = datetime.datetime(2015, 1, 1, tzinfo=_UTC)
CA_NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=_UTC)
STAFF_NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=_UTC)
STAFF_NOT_AFTER = datetime.datetime(2044, 12, 31, 23, 59, 59, tzinfo=_UTC)
"""Valid staff certificates: far enough ahead that the bench's clock control cannot reach it by accident."""
EXPIRED_NOT_BEFORE = datetime.datetime(2018, 1, 1, tzinfo=_UTC)
EXPIRED_NOT_AFTER = datetime.datetime(2022, 12, 31, 23, 59, 59, tzinfo=_UTC)
CRL_LAST_UPDATE = datetime.datetime(2024, 1, 1, tzinfo=_UTC)
CRL_NEXT_UPDATE = CA_NOT_AFTER
REVOCATION_DATE = datetime.datetime(2024, 6, 1, tzinfo=_UTC)

_BENCH_ORG = "nhi-console bench"
ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _BENCH_ORG),
        x509.NameAttribute(NameOID.COMMON_NAME, "HCA Test Root CA"),
    ]
)
ISSUING_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _BENCH_ORG),
        x509.NameAttribute(NameOID.COMMON_NAME, "HCA Test Issuing CA"),
    ]
)
UNTRUSTED_ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _BENCH_ORG + " (untrusted)"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Untrusted Test Root CA"),
    ]
)

# RSA-2048 primes (p, q) per key, hex. Generated once with OpenSSL; public on purpose (see above).
_FIXED_PRIMES: dict[str, tuple[str, str]] = {
    "hca-test-root": (
        "f739917b57df037c775846c995d1e9c7d5b539d29f7ae27a4459a7d1e9c2ca8a"
        "7d6aa22257269182d38215a8bef6b7f24acd493a1e70c0ffc12862073ab75678"
        "beee86bf6a31ff512d06b2c877154432bab89e569dafdda29923e5e2e2e51c10"
        "d1bc3bb9b0149818f36e6e6415a7344ce618fd07766704eb44168ff975821025",
        "e7d8d879be232e9e3927c8e35240e7ac4a1994087b467a331a2b64951ded884e"
        "3a5191f63ec75934e68625323971027d8a071e1e2bc904b00fdb04b1c64c1e86"
        "c4b6a7539ddeb9087cba459f8f3398389c4d671ab59a50f32cb9629f46ee089f"
        "0938b18f6d6920f1eb1993224bb5a0066f619238da2fe9089cfaadb7b3bf28cb",
    ),
    "hca-test-issuing-ca": (
        "c30033efaa58293ba51a9e039a9438095cff99cf28248318842e9bf020cb35d6"
        "a9df6ac464e480d6a21d28124197a36979cbc434306894dec7760d9e960f017c"
        "415a6fbc32af590ec4dfb2974ae9937e3b5f9918948f0f60b109ae261575f42f"
        "2cb168a3af138cdafd09d0f81b880f1e8409214c0fd2c39d5c02487afe095715",
        "bf2c74bd1e056d3e56407f70c6fc2718808d7b40cf39647b143939784709717d"
        "f43877167074979802053196e9241a4d4009841594bfc582c01674a151ead8bb"
        "d14a488237982bb82d3de9dfa563f17ad120cd22a00dc0d351f5ceece6797358"
        "141b2585b95b22782aea14088a99d5c75d99e56f064f2d5c12d58fe01217ae75",
    ),
    "untrusted-test-root": (
        "e27163b548595c5aa3671b394f32204f021c921ad88d720e5c1b1297aa5d9b58"
        "e4a35d08bc332f2a7c3f99986c69d000b1d3cb537ef97b09d7e6847dc2afb0e6"
        "8126878d89e2041fa7f9ef5918b0dd0cae7e1906cddc753c9d1e1da84c538c53"
        "b138167a6300140e589747541b93e65833a0963902bca9412c0e2499305c8e0d",
        "bd283a2fd86b14863521520d0d25ad86c91e6179b72d03d440ddcccbb7392757"
        "e3bb1952153bf6e8cbaac07a38973c650f69f6a947f5dff21d44ed6e775861fe"
        "b6740c0b721ee6ef4bc815486ba47d121bd02fa36ea09719643ddf11c6201ae7"
        "daca1e713cb5fc3397a0d6e4a1e3e570091338834c1eda84420c2e8c02c468dd",
    ),
    "hpc-doctor": (
        "c66d26823610ee6db3ef75963b479e9dacc27c3aaea985e719d89712350988d2"
        "a845672755bd9a68afba1667e6a60533ffe19c2b4b95d5e0f52a82c7165718a0"
        "ada0bf90c14d4cc740b298a5d0843cd828d3becf2f23f0910cf07bf36dd0a86f"
        "af40e783d21255c790d9973cbb9bab1f70bf88ba0ce372264d2a2ddc0f35fde3",
        "b91680c5ccc73ca86c15c08802c3d4039502c45c99eeed048d72d0619f69877d"
        "6ddafe2d887ba058ff15809006d20c1e19ffd32658a0c43da83b326c2ef55851"
        "f917bd8bf2de39d96011f72cad39a7fbe48c616f038a1752b8bfcc976840fe5d"
        "25ed51294a0389ae92b804cd67a7c07d29f63ef7373fc63b10a2c68b0ddb6bc5",
    ),
    "hpc-nurse": (
        "e7946d057564f280e106e81acde08cd79665b974c19aa733ed5e11efbdb536b4"
        "08c83fac4f3542aec4d094bf769b98a9f6cc436a69a939f325879a9e0868bded"
        "85c9528e27b2bc9a8e307fca8afa228d7f5a1a889e4beb93ec836dc1cad65aad"
        "e648c0155a616ad24a34a7892400b74af743401745ff9873898911518da7ce65",
        "d1560dc20cc18a3061b1dd37b385278ac80b27913b1a3ff3a23ae5d609829078"
        "516a7ca6749010c0a26c9dcc411944c31d2b357fdb67e874e7288a05c3b60c9a"
        "341ac06d8277cb3ee75de91cec6e1b55efe1f18e545d9e2df3d214e7953c3424"
        "2ea664a92eabe3bce8f13986daba1208697a2eab95a0b6c85ca0e15f5e0d9e03",
    ),
    "hpc-blocked": (
        "f01752c17ffc38297f73aee1abebb94d148a0ac8323d8f09e438f52146c113fe"
        "b88f310b5f926894760d1fe1f20c6fdd5fc34cea396dc1af5175c26ab5b7aa11"
        "f39f2ce381b7d98fd435ac218a62821dec553ef346db6248214e8a994a9c0385"
        "80068bc761fc0e8d8d0ed3290a26e7b61dc3b5ed8f438b6dec33e1dd591dca4b",
        "db4ec43b2c8c6d9135982b921fbf8b175c75da22c93760d9282da936721bb93e"
        "0fdd33499ac6f1b91ef05e2298b5307cab67a82849e5668da848cf7c721c1819"
        "55c23b97f848d59aaa2d535dfee5ee1bae29c68275b4b03d0f9f4a4aa960ade2"
        "4bfd6535f1adebe7d026701ce7fb6d103c248cbae763a8d06c6e81b3af4e0f13",
    ),
    "hpc-expired": (
        "fa2818a705fed2916054cb5cc83878d10aab18b1c77016f06b6a3c37aee24b59"
        "a40521ec4aee008ae8e7f6e44d99f236abd13f7e8584a30c45d59ddebf545040"
        "e699f0a95d381b6ff502e98ff796e4ed6430060d83d047eeb79782b267116a0b"
        "84c1751531317e0167869c4c4f3b1b47766bd98165567eb0f1c700622ebe6fe5",
        "f3b92c5dee1099e025a1da75613dee30a091d8f6a75db44c6aa5561f3a2a6c92"
        "d65f228e4ce3e88a8aa307ed8dc7fd1c178842165396d0bb62665a23a585114f"
        "efaa6d00b84b715382029cabbde9935eb18b7ded4d9c0f499231306aa5c25936"
        "0c2129d3141432e44f45eca773a887c4d444675bf61f33b69394ba4c97747467",
    ),
    "hpc-revoked": (
        "fd14df9348f6d19c29ae5646e550ce032be5c0624410b1a4ea037c79bcce7dcb"
        "bff7ad7a785cc82b7bf48f05692814388b79acd1edce2ec61ba6123dda54eeef"
        "f97ed5b2463ab28c97996dfcff9ca04654eb4d5faf1f7c69436b4d2f91d48bab"
        "668d3ca1e582441b1108c160d10d1458d7cdac4274bb43fb1865e4d0335982bd",
        "f7ff7ea858eb0dc1518068825199a0c50352ddef25809b635533ceed0d6f34b4"
        "2a10a6ac566432f742aaa3caaa88bc8a79a94c183f49bd7de6c67867c9e13b23"
        "df0f0f4d93871d547cc2e88b899ca3f5095c1480a5e7720a565d57d1fd950688"
        "c5bdd05053ada4ce9751c2cb513524e3dd32dc64d70d69976a597f67927e1157",
    ),
    "hpc-untrusted": (
        "d59c52509ac58ee0fc97ea5da9684d41e07f96bb673ee6297fdb98366e9d8af8"
        "730adb80157f559c567469b401b8de55cc0ec77269846b103faab6e794235617"
        "7442b6d5d6351db6f1b379cbdaba4876915495caeca6fe9c72ae2360b46a3ae0"
        "8c7af8c27b9d8d547085e9fc79314c1a8c8da7a60d7731389a9e0e3a83cfb083",
        "b761718598360e2ba4e3b18d4c33b6e2a46b6dec07c00fd5ac1331605142e280"
        "716aa6b00b2fb7eef87fd5c7d7866e57ccd4d7c91c944b95923c997b2808b1ef"
        "6e3b90798dea974d209afc33e14482e9c00baa42d7ada2cd7c99eb94d325cda1"
        "37fe572401728eb29c31bbac77a891fc26a19f9088af0bffa891164628141e13",
    ),
}


class KeyAndCertificate(NamedTuple):
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class BenchPki:
    root: KeyAndCertificate
    issuing_ca: KeyAndCertificate
    untrusted_root: KeyAndCertificate
    staff: Mapping[str, KeyAndCertificate]
    """By staff profile name (sim.profiles)."""
    crl: x509.CertificateRevocationList
    """Issued by the issuing CA; lists the certificate of every profile whose `certificate` is "revoked"."""

    def trust_store_pem(self) -> bytes:
        """What the console should trust in sim mode: the HCA test root (the issuing CA comes with the chain)."""
        return self.root.certificate.public_bytes(serialization.Encoding.PEM)

    def issuing_ca_pem(self) -> bytes:
        return self.issuing_ca.certificate.public_bytes(serialization.Encoding.PEM)


def _fixed_key(label: str) -> rsa.RSAPrivateKey:
    """The key named `label`, rebuilt from its primes; a label without fixed primes (a profile added
    later) gets a fresh key, which is then the same only within this process."""
    primes = _FIXED_PRIMES.get(label)
    if primes is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p, q = (int(h, 16) for h in primes)
    e = 65537
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    # The primes are checked once by the tests; checking them in every process would cost ~50 ms a key.
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def serial_number_for(label: str) -> int:
    """Fixed and distinct per certificate, positive, under 20 octets (RFC 5280)."""
    digest = hashlib.sha256(b"nhi-console bench certificate " + label.encode("utf-8")).digest()
    return (int.from_bytes(digest[:16], "big") >> 1) | 1


def _ca_certificate(
    label: str,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: KeyAndCertificate | None,
    path_length: int | None,
) -> x509.Certificate:
    signer_key = key if issuer is None else issuer.key
    issuer_name = subject if issuer is None else issuer.certificate.subject
    issuer_public = key.public_key() if issuer is None else issuer.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial_number_for(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
    )
    return builder.sign(signer_key, hashes.SHA256())


def _staff_certificate(
    label: str, data: StaffCardData, key: rsa.RSAPrivateKey, issuer: KeyAndCertificate
) -> x509.Certificate:
    """The holder's ID number in serialNumber and Chinese name as CN, the way HCA certificates name people."""
    expired = data.certificate == "expired"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.COMMON_NAME, data.c_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, data.id_no),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial_number_for(label))
        .not_valid_before(EXPIRED_NOT_BEFORE if expired else STAFF_NOT_BEFORE)
        .not_valid_after(EXPIRED_NOT_AFTER if expired else STAFF_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    return builder.sign(issuer.key, hashes.SHA256())


@functools.lru_cache(maxsize=1)
def bench_pki() -> BenchPki:
    """Built once per process, and identical in every process (see the module's docstring)."""
    root_key = _fixed_key("hca-test-root")
    root = KeyAndCertificate(root_key, _ca_certificate("hca-test-root", ROOT_NAME, root_key, None, None))
    issuing_key = _fixed_key("hca-test-issuing-ca")
    issuing_ca = KeyAndCertificate(
        issuing_key, _ca_certificate("hca-test-issuing-ca", ISSUING_CA_NAME, issuing_key, root, 0)
    )
    untrusted_key = _fixed_key("untrusted-test-root")
    untrusted_root = KeyAndCertificate(
        untrusted_key,
        _ca_certificate("untrusted-test-root", UNTRUSTED_ROOT_NAME, untrusted_key, None, 0),
    )

    staff: dict[str, KeyAndCertificate] = {}
    revoked: list[int] = []
    for name, profile in PROFILES.items():
        if not isinstance(profile.data, StaffCardData):
            continue
        key = _fixed_key(name)
        issuer = untrusted_root if profile.data.certificate == "untrusted" else issuing_ca
        certificate = _staff_certificate(name, profile.data, key, issuer)
        staff[name] = KeyAndCertificate(key, certificate)
        if profile.data.certificate == "revoked":
            revoked.append(certificate.serial_number)

    crl_builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing_ca.certificate.subject)
        .last_update(CRL_LAST_UPDATE)
        .next_update(CRL_NEXT_UPDATE)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_key.public_key()), critical=False)
    )
    for serial in sorted(revoked):
        crl_builder = crl_builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(REVOCATION_DATE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    crl = crl_builder.sign(issuing_key, hashes.SHA256())
    return BenchPki(root=root, issuing_ca=issuing_ca, untrusted_root=untrusted_root, staff=staff, crl=crl)
