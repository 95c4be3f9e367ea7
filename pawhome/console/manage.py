"""Create a staff account from the command line (`make staff LOGIN=... USER_ID=...`):

    python -m pawhome.console.manage create --login li.ming --user-id 5 [--totp]

The password is read from STAFF_PASSWORD or generated and printed once; with --totp (admins)
the authenticator's provisioning URI is printed too. `disable`/`enable --login` end or allow
an account's sign-ins.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pawhome.console import staff as staff_accounts
from pawhome.platform.errors import AppError
from pawhome.platform.resources import Resources
from settings import get_settings


async def _create(args: argparse.Namespace) -> str:
    resources = Resources(get_settings())
    try:
        password = os.environ.get("STAFF_PASSWORD") or staff_accounts.generate_password()
        view = await staff_accounts.create_staff(
            resources, login=args.login, password=password, user_id=args.user_id,
            display_name=args.name, totp=args.totp)
    finally:
        await resources.close()
    lines = [f"staff account {view['login']} (id {view['id']}) → user {view['user_id']} "
             f"({view['role']})"]
    if not os.environ.get("STAFF_PASSWORD"):
        lines.append(f"password: {password}")
    if view.get("totp_uri"):
        lines.append(f"TOTP (add to an authenticator app): {view['totp_uri']}")
    return "\n".join(lines)


async def _set_disabled(args: argparse.Namespace, disabled: bool) -> str:
    resources = Resources(get_settings())
    try:
        async with resources.db.session() as session:
            staff = await staff_accounts.find_staff(session, args.login)
        if staff is None:
            return f"no staff account {args.login}"
        view = await staff_accounts.set_disabled(resources, staff.id, disabled)
    finally:
        await resources.close()
    return f"staff account {view['login']} {'disabled' if disabled else 'enabled'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pawhome.console.manage",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new staff account")
    create.add_argument("--login", required=True)
    create.add_argument("--user-id", type=int, required=True,
                        help="the admin or merchant user the account acts as")
    create.add_argument("--name", default="", help="display name (default: the nickname)")
    create.add_argument("--totp", action="store_true", help="require a TOTP code (admins)")
    for name in ("disable", "enable"):
        sub = commands.add_parser(name, help=f"{name} a staff account")
        sub.add_argument("--login", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            print(asyncio.run(_create(args)))
        else:
            print(asyncio.run(_set_disabled(args, args.command == "disable")))
    except AppError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
