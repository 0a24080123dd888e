"""`python -m bot messenger-setup`: set the Page's Messenger profile (greeting, Get Started or ice breakers, menu).

A new thread shows either the Get Started button or ice breakers, not both (MESSENGER_WELCOME chooses), and
Meta shows the persistent menu only when Get Started is set, so the menu goes with Get Started. One POST
to `{GRAPH_API_BASE}/{GRAPH_API_VERSION}/me/messenger_profile` with the profile, then one DELETE of the
fields the other choice would have set: the same clinic.toml and setting give the same calls, so running
it twice leaves the Page as the first run did.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.channels import messenger_render as render
from bot.channels.messenger_graph import GraphClient, GraphError
from bot.config import ClinicProfile, Settings, get_settings, load_clinic

GREETING_LIMIT = 160
ICE_BREAKER_LIMIT = 80
MENU_TITLE_LIMIT = 30


def _greeting(clinic: ClinicProfile) -> str:
    """The welcome-screen text; it always says the assistant is automated."""
    text = " ".join(clinic.greeting.split())
    if "automated" not in text.lower():
        text = f"Hi! I'm the {clinic.name} automated assistant. {text}".strip()
    if len(text) > GREETING_LIMIT:
        text = (f"Hi! I'm the {clinic.name} automated assistant. Ask me about our articles or booking.")
    if len(text) > GREETING_LIMIT:
        text = "Hi! I'm the clinic's automated assistant. Ask me about our articles or booking."
    return text


def _menu(clinic: ClinicProfile) -> list[dict[str, Any]]:
    """Book / Call the clinic / Our articles. Menus cannot dial, so "Call" is a postback the webhook
    answers with the call button; links open in the webview when clinic.toml has a URL."""
    items: list[dict[str, Any]] = []
    if clinic.booking_url:
        items.append({"type": "web_url", "title": "Book online", "url": clinic.booking_url,
                      "webview_height_ratio": "full"})
    else:
        items.append({"type": "postback", "title": "Book", "payload": render.BOOK})
    items.append({"type": "postback", "title": "Call the clinic", "payload": render.CALL})
    if clinic.articles_url:
        items.append({"type": "web_url", "title": "Our articles", "url": clinic.articles_url,
                      "webview_height_ratio": "full"})
    else:
        items.append({"type": "postback", "title": "Our articles", "payload": render.ARTICLES})
    return items


def removed_fields(welcome: str = "get_started") -> list[str]:
    """The profile fields the other welcome choice sets, deleted so a Page never has both."""
    return ["ice_breakers"] if welcome == "get_started" else ["get_started", "persistent_menu"]


def build_profile(clinic: ClinicProfile, welcome: str = "get_started") -> dict[str, Any]:
    """The Messenger profile payload for this clinic (deterministic: same clinic.toml, same JSON)."""
    questions = [q.strip() for q in clinic.suggested_questions if q.strip()]
    questions = [q for q in questions if len(q) <= ICE_BREAKER_LIMIT][:4]
    profile: dict[str, Any] = {"greeting": [{"locale": "default", "text": _greeting(clinic)}]}
    if welcome == "get_started" or not questions:
        profile["get_started"] = {"payload": render.GET_STARTED}
        profile["persistent_menu"] = [{"locale": "default", "composer_input_disabled": False,
                                       "call_to_actions": _menu(clinic)}]
    else:
        # The payload is the question itself: the webhook hands it to the core as the patient's message.
        profile["ice_breakers"] = [{"locale": "default", "call_to_actions": [
            {"question": q, "payload": q[: render.PAYLOAD_LIMIT]} for q in questions]}]
    return profile


def _describe(profile: dict[str, Any]) -> str:
    lines = [f"greeting: {profile['greeting'][0]['text']}"]
    if "get_started" in profile:
        lines.append(f"get_started: payload {profile['get_started']['payload']}")
    for item in profile.get("ice_breakers", [{}])[0].get("call_to_actions", []):
        lines.append(f"ice breaker: {item['question']}")
    for item in profile.get("persistent_menu", [{}])[0].get("call_to_actions", []):
        target = item.get("url") or f"postback {item.get('payload')}"
        lines.append(f"menu: {item['title']} -> {target}")
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Set the profile (or print it with --dry-run); 0 on success, 1 when Meta refused, 2 when not configured."""
    settings = settings or get_settings()
    clinic = load_clinic(settings.knowledge_dir)
    welcome = settings.messenger_welcome
    profile = build_profile(clinic, welcome)
    if "get_started" in profile:
        welcome = "get_started"  # no questions for ice breakers: Get Started it is
    graph = GraphClient(settings)
    if getattr(args, "dry_run", False):
        print(f"DELETE {graph.url('me/messenger_profile')} fields={removed_fields(welcome)}")
        print(f"POST {graph.url('me/messenger_profile')}")
        print(json.dumps(profile, indent=2, ensure_ascii=False))
        return 0
    if not graph.token:
        print("error: set MESSENGER_PAGE_ACCESS_TOKEN (the Page access token) first; "
              "--dry-run shows what would be sent", file=sys.stderr)
        return 2
    try:
        graph.request_sync("DELETE", "me/messenger_profile", {"fields": removed_fields(welcome)},
                           op="messenger_profile_delete")
        result = graph.post_sync("me/messenger_profile", profile, op="messenger_profile")
    except GraphError as exc:
        print(f"error: Meta refused the Messenger profile (HTTP {exc.status}, code {exc.code})", file=sys.stderr)
        return 1
    print(_describe(profile))
    print(f"result: {result.get('result', 'ok')} ({graph.url('me/messenger_profile')})")
    return 0
