"""A small A2A agent on the published Python `a2a-sdk`, for Hive's interop test.

Usage: python a2a_sdk_agent.py PORT

Serves on 127.0.0.1:PORT: its card at /.well-known/agent-card.json and JSON-RPC (A2A 1.0, with
the SDK's 0.3 compatibility on the same endpoint) at /. A text message is answered with a task
that goes working -> artifact -> completed, its artifact and final message "python says: <text>".
The text "wait" leaves the task input-required instead, so that it can be canceled.
"""

import sys

import uvicorn
from a2a.helpers.proto_helpers import get_message_text, new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    TaskState,
)
from starlette.applications import Starlette


class PythonSaysExecutor(AgentExecutor):
    """Echoes the caller's text back as "python says: <text>"."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message) if context.message else ""
        task = context.current_task
        if task is None:
            task = new_task(
                context.task_id,
                context.context_id,
                TaskState.TASK_STATE_SUBMITTED,
                history=[context.message] if context.message else [],
            )
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if text == "wait":
            await updater.requires_input(self._reply(updater, "python waits"))
            return
        await updater.start_work()
        answer = f"python says: {text}"
        await updater.add_artifact([new_text_part(answer)], name="answer", last_chunk=True)
        await updater.complete(self._reply(updater, answer))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        task_id = task.id if task else context.task_id
        context_id = task.context_id if task else context.context_id
        updater = TaskUpdater(event_queue, task_id, context_id)
        await updater.cancel(self._reply(updater, "python canceled"))

    @staticmethod
    def _reply(updater: TaskUpdater, text: str):
        return updater.new_agent_message([new_text_part(text)])


def agent_card(base_url: str) -> AgentCard:
    return AgentCard(
        name="Python SDK Agent",
        description="Answers every text with 'python says: <text>' (a2a-sdk interop test).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=base_url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=base_url, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="python-says",
                name="Python says",
                description="Echoes the text it is given.",
                tags=["echo"],
                examples=["hello"],
            )
        ],
    )


def app(port: int) -> Starlette:
    card = agent_card(f"http://127.0.0.1:{port}/")
    handler = DefaultRequestHandler(
        agent_executor=PythonSaysExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(
        handler, rpc_url="/", enable_v0_3_compat=True
    )
    return Starlette(routes=routes)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: a2a_sdk_agent.py PORT")
    port = int(sys.argv[1])
    uvicorn.run(app(port), host="127.0.0.1", port=port, log_level="warning")
