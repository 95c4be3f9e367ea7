"""Auth endpoints: WeChat, SMS and development logins, phone binding, token refresh,
logout, session info. Each parses, calls one function in pawhome/identity/auth.py and replies."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.identity import auth
from pawhome.platform.errors import InvalidCode, NotFound, PhoneTaken, Unauthorized, WeChatError

PHONE_PATTERN = r"^1[3-9][0-9]{9}$"  # mainland mobile numbers (SMS login)


class DevLoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    role: str = Field("user", pattern=r"^(user|merchant|admin)$")


class WeChatLoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)
    encryptedData: str | None = Field(None, min_length=1, max_length=16384)
    iv: str | None = Field(None, min_length=1, max_length=64)


class PhoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)


class SmsSendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(pattern=PHONE_PATTERN)


class SmsLoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(pattern=PHONE_PATTERN)
    code: str = Field(pattern=r"^[0-9]{6}$")


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=256)


class DevLoginHandler(ApiHandler):
    """Log in as any openid without WeChat. Only in embedded/development settings."""

    def prepare(self) -> None:
        super().prepare()
        if not self.r.settings.dev_login:
            raise NotFound("No such endpoint")

    @endpoint(auth=False, body=DevLoginBody, tags=("auth",),
              summary="Development login (absent in production)")
    async def post(self) -> None:
        self.ok(await auth.login_dev(self.r, self.body.openid, self.body.role))


class WeChatLoginHandler(ApiHandler):
    @endpoint(auth=False, body=WeChatLoginBody, tags=("auth",), errors=(InvalidCode, WeChatError),
              refuses={"code": "a fresh wx.login() code", "encryptedData": "sent with iv",
                       "iv": "sent with encryptedData"},
              summary="Log in with a wx.login() code; the first login creates the user")
    async def post(self) -> None:
        self.ok(await auth.login_with_wechat(self.r, self.body.code, self.body.encryptedData,
                                             self.body.iv))


class PhoneHandler(ApiHandler):
    @endpoint(body=PhoneBody, tags=("auth",), errors=(InvalidCode, WeChatError, PhoneTaken),
              refuses={"code": "a fresh getPhoneNumber code"},
              summary="Bind the phone number behind a getPhoneNumber code")
    async def post(self) -> None:
        self.ok(await auth.bind_phone(self.r, self.user_id, self.body.code))


class SmsSendHandler(ApiHandler):
    @endpoint(auth=False, body=SmsSendBody, tags=("auth",),
              summary="Send a one-time login code by SMS")
    async def post(self) -> None:
        self.ok(await auth.send_sms_code(self.r, self.body.phone))


class SmsLoginHandler(ApiHandler):
    @endpoint(auth=False, body=SmsLoginBody, tags=("auth",), errors=(InvalidCode,),
              refuses={"code": "the code last sent to this phone, unexpired, within the "
                               "allowed attempts"},
              summary="Log in with a phone number and its SMS code")
    async def post(self) -> None:
        self.ok(await auth.login_with_sms(self.r, self.body.phone, self.body.code))


class RefreshHandler(ApiHandler):
    @endpoint(auth=False, body=RefreshBody, tags=("auth",), errors=(Unauthorized,),
              summary="Rotate a refresh token into a new token pair")
    async def post(self) -> None:
        self.ok(await auth.refresh_session(self.r, self.body.refresh_token))


class LogoutHandler(ApiHandler):
    @endpoint(tags=("auth",), summary="End the current session (all its tokens)")
    async def post(self) -> None:
        await auth.logout(self.r, self.caller)
        self.ok(None, message="logged out")


class SessionHandler(ApiHandler):
    @endpoint(tags=("auth",), summary="The current session: user, role, expiry")
    async def get(self) -> None:
        self.ok(auth.session_info(self.caller))
