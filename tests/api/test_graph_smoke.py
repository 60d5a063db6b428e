def test_mutual_requests_make_friends_and_block_ends_it(register):
    a, b, c = register(), register(), register()
    a.client.request("POST", "/v1/friends/requests", json={"user_id": b.id})
    rel = b.client.request("POST", "/v1/friends/requests", json={"user_id": a.id}).json()
    assert rel["friend"] is True and rel["request_received"] is False
    c.client.request("POST", f"/v1/users/{a.id}/follow")
    friends = a.client.request("GET", "/v1/friends").json()["items"]
    assert [f["id"] for f in friends] == [b.id]
    profile = c.client.request("GET", f"/v1/users/{a.id}").json()
    assert (profile["friends_count"], profile["followers_count"]) == (1, 1)
    rel = a.client.request("POST", f"/v1/users/{b.id}/block").json()
    assert rel["blocking"] is True and rel["friend"] is False
    assert b.client.raw("GET", f"/v1/users/{a.id}").status_code == 404
    assert a.client.request("GET", "/v1/friends").json()["items"] == []
    assert c.client.request("GET", f"/v1/users/{a.id}").json()["friends_count"] == 0
